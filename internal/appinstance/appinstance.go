// Package appinstance holds which tenant of an app a connection talks to
// (its base URL, subdomain or org, sandbox or not). The connection service
// keeps it in the connection's metadata and the broker beside the secret in
// Vault; both store it as this JSON.
package appinstance

import credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"

// Instance is one tenant of an app.
type Instance struct {
	BaseURL   string `json:"base_url,omitempty"`
	Subdomain string `json:"subdomain,omitempty"`
	OrgID     string `json:"org_id,omitempty"`
	Sandbox   bool   `json:"sandbox,omitempty"`
}

// FromProto reads an instance from the API (nil is the zero instance).
func FromProto(in *credentialv1.AppInstance) Instance {
	return Instance{BaseURL: in.GetBaseUrl(), Subdomain: in.GetSubdomain(), OrgID: in.GetOrgId(), Sandbox: in.GetSandbox()}
}

// Proto is the instance as the API shows it.
func (i Instance) Proto() *credentialv1.AppInstance {
	return &credentialv1.AppInstance{BaseUrl: i.BaseURL, Subdomain: i.Subdomain, OrgId: i.OrgID, Sandbox: i.Sandbox}
}
