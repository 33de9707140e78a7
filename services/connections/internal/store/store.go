// Package store defines how the connection service keeps its metadata,
// independent of the database: connections (and runtime user connections),
// recipes and their connection bindings, workspace settings, the event log
// that is both the audit trail and the change stream, and the credential
// broker's record of accesses. Implementations live
// in sub-packages (storesqlite, storepostgres, sharing storesql) and all pass
// the suite in storetest.
//
// Nothing in this package is secret: secrets live in Vault behind the broker.
package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/integrationhub/connections/internal/appinstance"
)

// Errors every implementation returns, wrapped with context.
var (
	// ErrNotFound means the named thing does not exist.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict means the connection changed since the version the caller
	// read (optimistic concurrency).
	ErrConflict = errors.New("store: version conflict")
	// ErrAlreadyExists means a unique key is taken (e.g. a runtime user
	// already has a connection under that parent).
	ErrAlreadyExists = errors.New("store: already exists")
	// ErrInvalidPageToken means a page token was not issued by this store.
	ErrInvalidPageToken = errors.New("store: invalid page token")
	// ErrIntentGone means a secret generation was to become live but its
	// write intent no longer exists: the write took longer than its deadline
	// and the reconciler (or the writer itself) abandoned it. Nothing was
	// changed; the caller may retry.
	ErrIntentGone = errors.New("store: the secret write outlived its deadline")
	// ErrParentGone means a runtime user connection's parent was deleted.
	ErrParentGone = errors.New("store: parent connection not found")
	// ErrInvalidText means a string holds a NUL byte or invalid UTF-8,
	// which not every database can keep; it wraps a *validtext.Error naming
	// the field.
	ErrInvalidText = errors.New("store: invalid text")
)

// InUseError refuses to delete a connection that recipes still use.
type InUseError struct {
	Bindings []Binding
}

func (e *InUseError) Error() string { return "store: connection in use by recipes" }

// LimitError refuses to store more of something than a workspace may have.
type LimitError struct {
	What string // e.g. "webhooks"
	Max  int
}

func (e *LimitError) Error() string {
	return fmt.Sprintf("store: the workspace has the most %s it may have (%d)", e.What, e.Max)
}

// CrossEnvironmentError refuses to turn cross-environment bindings off
// while a workspace's recipes still use connections of the other
// environment.
type CrossEnvironmentError struct {
	Bindings []Binding
}

func (e *CrossEnvironmentError) Error() string { return "store: cross-environment bindings exist" }

// Status values.
const (
	StatusPending      = "pending"
	StatusActive       = "active"
	StatusInvalid      = "invalid"
	StatusDisconnected = "disconnected"
)

// Connection is a connection's metadata as stored. JSON names are those of
// the audit log's before/after snapshots.
type Connection struct {
	ID                 string    `json:"id"`
	WorkspaceID        string    `json:"workspace_id"`
	ProjectID          string    `json:"project_id,omitempty"`
	Name               string    `json:"name"`
	Connector          string    `json:"connector"`
	Environment        string    `json:"environment"` // "production" or "sandbox"
	AuthType           string    `json:"auth_type"`   // e.g. "basic", "api_key", "oauth2_authorization_code"
	Instance           Instance  `json:"instance"`
	Status             string    `json:"status"`
	StatusReason       string    `json:"status_reason,omitempty"`
	LastError          string    `json:"last_error,omitempty"`
	LastVerifyTime     time.Time `json:"last_verify_time,omitzero"` // zero when never verified
	AuthorizedAs       string    `json:"authorized_as,omitempty"`
	GrantedScopes      []string  `json:"granted_scopes,omitempty"`
	Owner              string    `json:"owner,omitempty"`
	ParentConnectionID string    `json:"parent_connection_id,omitempty"`
	RuntimeUser        string    `json:"runtime_user,omitempty"`
	CreateTime         time.Time `json:"create_time"`
	UpdateTime         time.Time `json:"update_time"`
	// Version increases by one on every change; the API's etag.
	Version int64 `json:"version"`
	// SecretGeneration names the Vault secret generation the broker serves
	// ("" = the legacy single entry, or no secret). It changes only together
	// with the write intent it consumes (see Store.Update).
	SecretGeneration string `json:"secret_generation,omitempty"`
	// State is StateLive, or StateDeleting for a tombstone (never returned
	// by reads; seen only by the reconciler's scans).
	State string `json:"-"`
	// Activity is read with the connection by Get and List (in the same
	// query) and is zero elsewhere; it is not part of the audit snapshots.
	Activity Activity `json:"-"`
}

// NotFoundError names what was not found; errors.Is(err, ErrNotFound)
// holds for it.
type NotFoundError struct {
	Kind string // one of the Kind constants
	ID   string // what the caller named it by ("" when that is not to be repeated)
}

// What a NotFoundError can be about.
const (
	KindConnection            = "connection"
	KindRuntimeUserConnection = "runtime user connection"
	KindRecipe                = "recipe"
	KindBinding               = "recipe step binding"
	KindOAuthClient           = "OAuth client registration"
	KindAuthorization         = "authorization"
	KindWebhook               = "webhook"
	KindWebhookDelivery       = "webhook delivery"
	KindConnectSession        = "connect session"
)

func (e *NotFoundError) Error() string {
	if e.ID == "" {
		return "store: " + e.Kind + " not found"
	}
	return "store: " + e.Kind + " " + e.ID + " not found"
}

// Is makes errors.Is(err, ErrNotFound) hold.
func (e *NotFoundError) Is(target error) bool { return target == ErrNotFound }

// NotFound names a missing kind and id when err is a bare ErrNotFound; any
// other error (a NotFoundError already, or another failure) is returned as
// it is.
func NotFound(kind, id string, err error) error {
	var nf *NotFoundError
	if errors.Is(err, ErrNotFound) && !errors.As(err, &nf) {
		return &NotFoundError{Kind: kind, ID: id}
	}
	return err
}

// Row states.
const (
	StateLive     = ""
	StateDeleting = "deleting"
)

// SecretKey names one secret generation of one connection in Vault.
type SecretKey struct {
	ConnectionID string
	Generation   string
}

// ClientKey names one generation of an OAuth client registration's secret
// in Vault.
type ClientKey struct {
	Connector   string
	WorkspaceID string // "" is the platform's own OAuth app
	Generation  string
}

// Intent is the key of k's write intent. Client secret writes share the
// intent table with connection secrets under a key no connection id (a
// UUID) can take.
func (k ClientKey) Intent() SecretKey {
	return SecretKey{ConnectionID: "oauth-client:" + k.Connector + "/" + k.WorkspaceID, Generation: k.Generation}
}

// OAuthClient is an OAuth client registration as the metadata holds it.
type OAuthClient struct {
	ClientKey
	ClientID string
}

// ClientSnapshot is an OAuth client registration as the audit log and the
// change stream record it (no secret).
type ClientSnapshot struct {
	Connector   string `json:"connector"`
	WorkspaceID string `json:"workspace_id"`
	ClientID    string `json:"client_id"`
	Generation  string `json:"secret_generation,omitempty"`
}

// Instance is the app instance a connection talks to.
type Instance = appinstance.Instance

// Recipe is what the connection service knows of a recipe: enough to guard
// bindings and runtime user swaps.
type Recipe struct {
	ID                     string `json:"id"`
	WorkspaceID            string `json:"workspace_id"`
	Name                   string `json:"name,omitempty"`
	Environment            string `json:"environment"`
	Callable               bool   `json:"callable"`
	RuntimeUserConnections bool   `json:"runtime_user_connections"`
	// RuntimeUserFallback serves a runtime user without a connection for an
	// app the recipe's own connection instead of refusing.
	RuntimeUserFallback bool      `json:"runtime_user_fallback"`
	CreateTime          time.Time `json:"create_time"`
	UpdateTime          time.Time `json:"update_time"`
}

// Binding says that a recipe step uses a connection.
type Binding struct {
	RecipeID     string    `json:"recipe_id"`
	Step         string    `json:"step"`
	ConnectionID string    `json:"connection_id"`
	CreateTime   time.Time `json:"create_time"`
}

// BindingView is a binding with the bound connection, for the binding rules.
type BindingView struct {
	Binding
	Connection *Connection
}

// Workspace holds per-workspace settings.
type Workspace struct {
	ID string `json:"id"`
	// AllowCrossEnvironment lets production recipes use sandbox connections
	// and the reverse.
	AllowCrossEnvironment bool `json:"allow_cross_environment"`
	// AllowedOrigins are the origins (scheme://host[:port]) the OAuth
	// callback may send a browser back to.
	AllowedOrigins []string `json:"allowed_origins,omitempty"`
}

// Event is one change, in commit order. It is the audit log (who, what,
// when, before and after) and the change stream (resume after Seq).
type Event struct {
	Seq          int64     `json:"seq"`
	Time         time.Time `json:"time"`
	WorkspaceID  string    `json:"workspace_id"`
	ConnectionID string    `json:"connection_id,omitempty"`
	RecipeID     string    `json:"recipe_id,omitempty"`
	Actor        string    `json:"actor"`
	Action       string    `json:"action"` // see the Action constants
	Before       string    `json:"before,omitempty"`
	After        string    `json:"after,omitempty"` // JSON snapshots; never a secret
}

// Actions recorded in events.
const (
	ActionConnectionCreate = "connection.create"
	ActionConnectionUpdate = "connection.update"
	ActionConnectionDelete = "connection.delete"
	ActionRecipePut        = "recipe.put"
	ActionBind             = "binding.create"
	ActionUnbind           = "binding.delete"
	ActionWorkspacePut     = "workspace.put"
	ActionOAuthClientPut   = "oauth_client.put"
)

// ConnectSession is a link of the hosted connect flow and what it may do.
type ConnectSession struct {
	TokenHash   string
	WorkspaceID string
	// Subject and Privileges are the creator's: the flow acts as them.
	Subject    string
	Privileges []string
	Connectors []string
	// A builder's connection: ProjectID and Environment; a runtime user's:
	// ParentConnectionID and RuntimeUser.
	ProjectID, Environment          string
	ParentConnectionID, RuntimeUser string
	BindRecipeID, BindStep          string
	ReturnURL                       string
	ExpireTime                      time.Time
	Attempts                        int
	Used                            bool
}

// Webhook is a workspace's subscription to connection events.
type Webhook struct {
	ID          string
	WorkspaceID string
	URL         string
	// Events are the event types it receives ("connection.invalid", ...).
	Events []string
	// SecretGeneration names the signing secret's generation in Vault.
	SecretGeneration string
	CreatedBy        string
	CreateTime       time.Time
	// StartSeq is the sequence of its own creation event: later events
	// are delivered to it. Set by the store.
	StartSeq int64
}

// WebhookIntent is the write intent key of a webhook's signing secret.
func WebhookIntent(id, gen string) SecretKey {
	return SecretKey{ConnectionID: "webhook:" + id, Generation: gen}
}

// Webhook delivery states.
const (
	DeliveryPending   = "pending"
	DeliverySucceeded = "succeeded"
	DeliveryFailed    = "failed"
)

// WebhookDelivery is one event queued for one webhook (the outbox).
type WebhookDelivery struct {
	Seq          int64  // set by the store; orders deliveries
	ID           string // the webhook-id header ("msg_...")
	WebhookID    string
	EventSeq     int64
	EventType    string
	ConnectionID string
	Payload      string // the JSON body; never a secret
	CreateTime   time.Time
	State        string // see the Delivery constants
	// Attempts made so far; RetryBase is Attempts when the current retry
	// schedule began (a redelivery starts a new schedule).
	Attempts, RetryBase int
	NextAttempt         time.Time
	// Log holds the attempts, oldest first (WebhookDeliveries only).
	Log []WebhookAttempt
}

// WebhookAttempt is one try at a delivery.
type WebhookAttempt struct {
	Time       time.Time
	HTTPStatus int // 0 without an answer
	Error      string
	Duration   time.Duration
}

// Lock names a job that one replica at a time runs (Store.Leader).
type Lock int

// The jobs with a leader. Each has its own lock, so that a slow one (a
// webhook receiver that times out) does not hold up the others.
const (
	// LockReconciler is held by the reconciler and the scheduled checks.
	LockReconciler Lock = iota
	// LockWebhooks is held by the webhook dispatcher.
	LockWebhooks
)

// ListQuery selects a page of a workspace's connections, newest first.
type ListQuery struct {
	WorkspaceID string
	PageSize    int
	PageToken   string
	// Filters; empty means any.
	Connector   string
	Status      string
	Environment string
	AuthType    string
	Owner       string
	// ProjectID, when HasProject, keeps the connections in that project
	// ("" is the workspace root).
	ProjectID  string
	HasProject bool
	// NameContains keeps the connections whose name contains it, ignoring
	// case (ASCII letters only on SQLite); it is matched literally.
	NameContains string
	// ParentConnectionID lists that connection's runtime user connections
	// instead of the workspace's ordinary connections.
	ParentConnectionID string
	// RuntimeUser, with ParentConnectionID, lists only that runtime user's
	// connection; alone, that runtime user's connections under any parent.
	RuntimeUser string
}

// EventQuery selects events, oldest first.
type EventQuery struct {
	WorkspaceID  string // "" means every workspace (change stream consumers)
	ConnectionID string
	Actor        string
	Since, Until time.Time // zero means unbounded
	AfterSeq     int64     // resume point (page token or watch cursor)
	Limit        int
}

// AccessEvent records identical accesses by one job, as the credential
// broker reports them: who asked for which connection, which one served, and
// whether it was allowed. It never contains a secret.
type AccessEvent struct {
	Seq                   int64  // set by the store
	WorkspaceID           string // "" when the broker could not tell
	Operation             string // the broker RPC, e.g. "GetCredential"
	JobID                 string
	RecipeID              string
	RequestedConnectionID string
	ResolvedConnectionID  string // "" when denied
	RuntimeUser           string
	Decision              string // see the Access constants
	Code                  string // the gRPC code returned, e.g. "OK"
	Reason                string
	Count                 int64 // how many identical accesses
	FirstTime, LastTime   time.Time
	Broker                string    // the broker instance
	RecordTime            time.Time // set by the store
}

// Activity is what is known of a connection's use; zero times are
// unknown. LastUse is the last allowed access resolved to it (to the
// minute); LastRefresh when the broker last obtained an access token for
// it, and TokenExpiry when that token expires.
type Activity struct {
	LastUse, LastRefresh, TokenExpiry time.Time
}

// Access decisions.
const (
	AccessAllowed = "allowed"
	AccessDenied  = "denied"
)

// AccessQuery selects access events, oldest first. Filters left empty match
// any.
type AccessQuery struct {
	WorkspaceID  string // "" means every workspace, and events without one
	ConnectionID string // requested or resolved
	RecipeID     string
	JobID        string
	Decision     string
	AfterSeq     int64 // resume point (page token)
	Limit        int
}

// AuthState is a pending OAuth authorization, keyed by the state's hash.
type AuthState struct {
	StateHash    string
	ConnectionID string
	Subject      string // who started it
	Scopes       []string
	RedirectURI  string
	ExpireTime   time.Time
	// SecretGeneration is where an OAuth 1.0a authorization keeps its
	// pending request token (its write intent lasts as long as the state).
	SecretGeneration string
	// BindRecipeID and BindStep, when set, name the recipe step to bind
	// the connection to once authorized.
	BindRecipeID, BindStep string
	// ReturnURL is where the callback sends the browser when done ("" for
	// a page of its own).
	ReturnURL string
}

// Store keeps the connection service's metadata. Every change method records
// an Event in the same transaction, with the given actor.
type Store interface {
	// Create stores c. CreateTime, UpdateTime and Version are set by the store.
	// A c.SecretGeneration other than "" must have a write intent, which
	// Create consumes (else ErrIntentGone). A runtime user connection's
	// parent is locked and must be live (else ErrParentGone).
	Create(ctx context.Context, actor string, c *Connection) error
	// CreateBound creates c and binds it to b's recipe step (b.ConnectionID
	// is set to c.ID) in one transaction, as Create and Bind would: if the
	// bind fails its check or its recipe is missing, nothing is stored.
	CreateBound(ctx context.Context, actor string, c *Connection, b Binding, check func(w *Workspace, r *Recipe, c *Connection, others []BindingView) error) error
	// Get returns the connection with id, or ErrNotFound.
	Get(ctx context.Context, id string) (*Connection, error)
	// GetRuntimeUserConnection returns the runtime user's child of parentID.
	GetRuntimeUserConnection(ctx context.Context, parentID, runtimeUser string) (*Connection, error)
	// List returns one page and the token of the next one ("" at the end).
	List(ctx context.Context, q ListQuery) ([]*Connection, string, error)
	// Count is how many connections q's filters match in all (its page
	// size and token are ignored).
	Count(ctx context.Context, q ListQuery) (int64, error)
	// Update applies change to the stored connection atomically and returns the
	// result. With version > 0 it fails with ErrConflict unless the stored
	// version equals it. change must not alter ID, CreateTime or Version.
	// When change sets a new SecretGeneration, the write intent for it is
	// consumed in the same transaction (ErrIntentGone without one). A
	// tombstoned connection is ErrNotFound.
	Update(ctx context.Context, actor, id string, version int64, change func(*Connection) error) (*Connection, error)
	// Delete tombstones the connection and its runtime user connections:
	// from its commit they are hidden from every read and refuse updates and
	// binds, and their delete events are recorded. With version > 0 it fails
	// with ErrConflict unless the stored version equals it. A connection that
	// recipes use is refused with *InUseError unless force, which removes the
	// bindings too. It returns the tombstoned connections; once their secrets
	// are destroyed, Purge removes them.
	Delete(ctx context.Context, actor, id string, version int64, force bool) ([]*Connection, error)
	// Purge removes a tombstoned connection (and its tombstoned runtime user
	// connections). Purging what is not there succeeds.
	Purge(ctx context.Context, id string) error

	// BeginSecretWrite records the intent to write a new secret generation,
	// valid until expire. Only while it exists may the generation become
	// live.
	BeginSecretWrite(ctx context.Context, k SecretKey, expire time.Time) error
	// EndSecretWrite drops an intent (the write failed or was refused).
	EndSecretWrite(ctx context.Context, k SecretKey) error
	// SecretInUse reports whether a stored secret generation must be kept:
	// a live connection names it, or an intent for it has not expired at
	// now. With reap, an expired intent is deleted first, so that its
	// writer can no longer make the generation live.
	SecretInUse(ctx context.Context, k SecretKey, now time.Time, reap bool) (bool, error)
	// ReapIntents deletes intents expired at now and returns how many (with
	// dryRun, only counts them).
	ReapIntents(ctx context.Context, now time.Time, dryRun bool) (int64, error)
	// PendingIntents counts the intents that have not expired at now.
	PendingIntents(ctx context.Context, now time.Time) (int64, error)
	// Scan returns up to limit connections, tombstones included, ordered by
	// id, after afterID.
	Scan(ctx context.Context, afterID string, limit int) ([]*Connection, error)
	// DueForCheck returns up to limit active, live connections created and
	// last verified before before (never verified first), oldest
	// verification first, then by id; after, when not nil, is the last one
	// of the previous page.
	DueForCheck(ctx context.Context, before time.Time, after *Connection, limit int) ([]*Connection, error)
	// Leader runs fn only if this process holds lock (one holder across
	// every replica sharing the database); ran reports whether it did.
	Leader(ctx context.Context, lock Lock, fn func(context.Context) error) (ran bool, err error)

	// PutRecipe creates or replaces a recipe.
	PutRecipe(ctx context.Context, actor string, r *Recipe) error
	// GetRecipe returns a recipe, or ErrNotFound.
	GetRecipe(ctx context.Context, id string) (*Recipe, error)
	// Bind adds or replaces the binding of b's recipe step. check runs inside
	// the transaction, with the recipe and the connection locked and the
	// workspace's settings locked against change, on the recipe's workspace
	// settings, the recipe, the connection and the recipe's other bindings;
	// its error aborts the bind.
	Bind(ctx context.Context, actor string, b Binding, check func(w *Workspace, r *Recipe, c *Connection, others []BindingView) error) error
	// Unbind removes a recipe step's binding, or returns ErrNotFound.
	Unbind(ctx context.Context, actor, recipeID, step string) error
	// Usage lists the bindings of a connection.
	Usage(ctx context.Context, connectionID string) ([]Binding, error)
	// RecipeBindings lists a recipe's bindings.
	RecipeBindings(ctx context.Context, recipeID string) ([]Binding, error)
	// CrossEnvironmentBindings lists the bindings of a workspace's recipes
	// to connections of the other environment.
	CrossEnvironmentBindings(ctx context.Context, workspaceID string) ([]Binding, error)

	// GetWorkspace returns a workspace's settings (defaults when never set).
	GetWorkspace(ctx context.Context, id string) (*Workspace, error)
	// PutWorkspace stores a workspace's settings. Turning cross-environment
	// bindings off fails with *CrossEnvironmentError while such bindings
	// exist (checked in the same transaction, so a concurrent bind either
	// is listed or sees the setting off).
	PutWorkspace(ctx context.Context, actor string, w *Workspace) error

	// Events returns events matching q, oldest first.
	Events(ctx context.Context, q EventQuery) ([]Event, error)
	// LastEventSeq returns the newest event's sequence number (0 if none).
	LastEventSeq(ctx context.Context) (int64, error)

	// RecordAccess stores a batch of access events in one transaction,
	// assigning each its Seq (in the order given) and RecordTime, and
	// moves the last use of the connections the allowed ones resolved to
	// (to the minute, never backwards). A
	// non-empty batchID that was recorded before makes it store nothing
	// and succeed (the batch was sent again after a lost answer).
	RecordAccess(ctx context.Context, batchID string, evs []AccessEvent) error
	// RecordRefresh notes a token the broker obtained at refreshed,
	// expiring at expires (zero: not said); an older refresh than the one
	// recorded changes nothing.
	RecordRefresh(ctx context.Context, id string, refreshed, expires time.Time) error
	// AccessEvents returns access events matching q, oldest first.
	AccessEvents(ctx context.Context, q AccessQuery) ([]AccessEvent, error)
	// PruneAccessEvents deletes at most limit (> 0) access events whose
	// LastTime is before before, lowest Seq first, and returns how many it
	// deleted: fewer than limit means none older are left.
	PruneAccessEvents(ctx context.Context, before time.Time, limit int) (int64, error)

	// PutOAuthClient makes generation k the live registration of k's
	// connector and workspace, with clientID, consuming k's write intent in
	// the same transaction (ErrIntentGone without one), and returns the
	// generation it replaced ("" when none or the legacy entry, which then
	// stays for the reconciler).
	PutOAuthClient(ctx context.Context, actor string, k ClientKey, clientID string) (previous string, err error)
	// OAuthClient returns the live registration of a connector for exactly
	// workspace ("" = the platform's); with fallback, the workspace's own,
	// else the platform's. ErrNotFound when there is none.
	OAuthClient(ctx context.Context, connector, workspace string, fallback bool) (*OAuthClient, error)
	// ClientSecretInUse is SecretInUse for a generation of an OAuth client
	// registration: held by an unexpired intent, or named by its row.
	ClientSecretInUse(ctx context.Context, k ClientKey, now time.Time, reap bool) (bool, error)
	// CreateAuthState stores a pending authorization.
	CreateAuthState(ctx context.Context, s *AuthState) error
	// ConsumeAuthState removes and returns a pending authorization; a state
	// used before, never issued, or expired at now is ErrNotFound.
	ConsumeAuthState(ctx context.Context, stateHash string, now time.Time) (*AuthState, error)

	// CreateWebhook stores w (setting CreateTime and StartSeq) and records
	// its creation event, consuming the write intent of its signing
	// secret (ErrIntentGone without one). A workspace that has max
	// webhooks already is refused with *LimitError.
	CreateWebhook(ctx context.Context, actor string, w *Webhook, max int) error
	// Webhooks lists a workspace's webhooks, oldest first ("" lists every
	// workspace's).
	Webhooks(ctx context.Context, workspaceID string) ([]*Webhook, error)
	// DeleteWebhook removes a workspace's webhook and its deliveries and
	// records the deletion; ErrNotFound when it has none with that id.
	DeleteWebhook(ctx context.Context, actor, workspaceID, id string) (*Webhook, error)
	// WebhookSecretInUse is SecretInUse for a webhook's signing secret:
	// held by an unexpired intent, or named by the webhook.
	WebhookSecretInUse(ctx context.Context, id, gen string, now time.Time, reap bool) (bool, error)
	// WebhookCursor is the sequence of the last event turned into
	// deliveries.
	WebhookCursor(ctx context.Context) (int64, error)
	// EnqueueDeliveries stores ds and moves the cursor from from to to, in
	// one transaction; ErrConflict when the cursor is no longer at from
	// (another replica moved it). A delivery already queued for the same
	// webhook, event and type is skipped.
	EnqueueDeliveries(ctx context.Context, from, to int64, ds []WebhookDelivery) error
	// DueDeliveries returns up to limit pending deliveries due at now,
	// most overdue first.
	DueDeliveries(ctx context.Context, now time.Time, limit int) ([]WebhookDelivery, error)
	// RecordAttempt logs attempt a of delivery id, which was read due at
	// due, and sets its state and next attempt time, unless it was queued
	// again meanwhile (RedeliverWebhook while the attempt was out): then it
	// stays queued, and the attempt does not count in its new schedule.
	// ErrNotFound when the delivery is gone (its webhook was deleted).
	RecordAttempt(ctx context.Context, id string, due time.Time, a WebhookAttempt, state string, next time.Time) error
	// WebhookDeliveries returns up to limit of a webhook's deliveries with
	// their attempts, newest first, below beforeSeq (0: from the newest).
	WebhookDeliveries(ctx context.Context, webhookID string, beforeSeq int64, limit int) ([]WebhookDelivery, error)
	// Redeliver queues a workspace's delivery again at now, with a new
	// retry schedule, and returns it; ErrNotFound when the workspace has
	// no such delivery.
	Redeliver(ctx context.Context, workspaceID, id string, now time.Time) (*WebhookDelivery, error)

	// CreateConnectSession stores a connect session.
	CreateConnectSession(ctx context.Context, cs *ConnectSession) error
	// ConnectSession returns the unused connect session with tokenHash
	// that has not expired at now and counts an attempt at it when attempt
	// is set (Attempts is then the count with this one); ErrNotFound
	// otherwise.
	ConnectSession(ctx context.Context, tokenHash string, now time.Time, attempt bool) (*ConnectSession, error)
	// UseConnectSession marks a session used (use) or unused again (a use
	// that failed); ErrNotFound when it already was, or never existed, so
	// that of concurrent uses only one succeeds.
	UseConnectSession(ctx context.Context, tokenHash string, use bool) error

	// Close releases the store's resources.
	Close() error
}
