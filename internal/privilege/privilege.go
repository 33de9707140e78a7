// Package privilege names the privileges that caller tokens carry (the
// "privileges" claim). A platform role is a set of these; the connection
// service maps each RPC to the one it needs.
package privilege

// Privileges.
const (
	CreateConnections          = "connections:create"
	ViewConnections            = "connections:view"
	EditConnections            = "connections:edit"
	DeleteConnections          = "connections:delete"
	ViewRuntimeUserConnections = "runtime_connections:view"
	EditRuntimeUserConnections = "runtime_connections:edit"
	ViewAudit                  = "audit:view"
	ManageRecipes              = "recipes:manage"
	ManageWorkspace            = "workspace:manage"
	// ReportStatus is the credential broker's: it reports what it observes.
	ReportStatus = "connections:report_status"
	// MintJobTokens is the job scheduler's, at the broker.
	MintJobTokens = "jobs:mint"
	// Reconcile is the operator's: compare metadata with Vault and repair.
	Reconcile = "connections:reconcile"
)

// All lists every privilege (the local stack's dev token holds them all).
var All = []string{CreateConnections, ViewConnections, EditConnections, DeleteConnections,
	ViewRuntimeUserConnections, EditRuntimeUserConnections, ViewAudit, ManageRecipes, ManageWorkspace, ReportStatus, MintJobTokens,
	Reconcile}
