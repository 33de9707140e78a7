package api

import (
	"strconv"
	"strings"

	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/timestamppb"

	connectionsv1 "github.com/integrationhub/connections/gen/integrationhub/connections/v1"
	credentialv1 "github.com/integrationhub/connections/gen/integrationhub/credential/v1"

	"github.com/integrationhub/connections/services/connections/internal/catalog"
	"github.com/integrationhub/connections/services/connections/internal/store"
)

// The store keeps enums as short lower-case words ("production", "active",
// "basic"): the proto name without its prefix. Unspecified maps to "".

type enum interface {
	protoreflect.Enum
	String() string
}

func enumName[E enum](e E, prefix string) string {
	if e.Number() == 0 {
		return ""
	}
	return strings.ToLower(strings.TrimPrefix(e.String(), prefix))
}

func enumValue(values map[string]int32, prefix, name string) int32 {
	if name == "" {
		return 0
	}
	return values[prefix+strings.ToUpper(name)]
}

func authTypeOf(name string) credentialv1.AuthType {
	return credentialv1.AuthType(enumValue(credentialv1.AuthType_value, "AUTH_TYPE_", name))
}

func toProto(c *store.Connection) *connectionsv1.Connection {
	p := &connectionsv1.Connection{
		Id:                 c.ID,
		WorkspaceId:        c.WorkspaceID,
		ProjectId:          c.ProjectID,
		Name:               c.Name,
		Connector:          c.Connector,
		Environment:        connectionsv1.Environment(enumValue(connectionsv1.Environment_value, "ENVIRONMENT_", c.Environment)),
		AuthType:           authTypeOf(c.AuthType),
		Instance:           instanceToProto(c.Instance),
		Status:             connectionsv1.ConnectionStatus(enumValue(connectionsv1.ConnectionStatus_value, "CONNECTION_STATUS_", c.Status)),
		StatusReason:       connectionsv1.StatusReason(enumValue(connectionsv1.StatusReason_value, "STATUS_REASON_", c.StatusReason)),
		LastError:          c.LastError,
		AuthorizedAs:       c.AuthorizedAs,
		GrantedScopes:      c.GrantedScopes,
		Owner:              c.Owner,
		CreateTime:         timestamppb.New(c.CreateTime),
		UpdateTime:         timestamppb.New(c.UpdateTime),
		Etag:               strconv.FormatInt(c.Version, 10),
		ParentConnectionId: c.ParentConnectionID,
		RuntimeUser:        c.RuntimeUser,
		SecretGeneration:   c.SecretGeneration,
	}
	if !c.LastVerifyTime.IsZero() {
		p.LastVerifyTime = timestamppb.New(c.LastVerifyTime)
	}
	return p
}

func instanceFromProto(in *credentialv1.AppInstance) store.Instance {
	return store.Instance{
		BaseURL:   in.GetBaseUrl(),
		Subdomain: in.GetSubdomain(),
		OrgID:     in.GetOrgId(),
		Sandbox:   in.GetSandbox(),
	}
}

func instanceToProto(in store.Instance) *credentialv1.AppInstance {
	return &credentialv1.AppInstance{
		BaseUrl:   in.BaseURL,
		Subdomain: in.Subdomain,
		OrgId:     in.OrgID,
		Sandbox:   in.Sandbox,
	}
}

func connectorToProto(c *catalog.Connector) *connectionsv1.Connector {
	p := &connectionsv1.Connector{
		Name:                      c.Name,
		DisplayName:               c.DisplayName,
		Description:               c.Description,
		AuthTypes:                 c.AuthTypes(),
		AllowsSecondaryConnection: c.AllowsSecondary,
		DefaultBaseUrl:            c.DefaultBaseURL,
	}
	for _, ip := range c.InstanceParameters {
		p.InstanceParameters = append(p.InstanceParameters, &connectionsv1.InstanceParameter{
			Name: ip.Name, Description: ip.Description, Required: ip.Required,
		})
	}
	return p
}
