// Package store defines how the connection service keeps connection metadata,
// independent of the database. Implementations live in sub-packages
// (storesqlite) and all pass the suite in storetest.
//
// Nothing in this package is secret: secrets live in Vault behind the broker.
package store

import (
	"context"
	"errors"
	"time"
)

// Errors every implementation returns, wrapped with context.
var (
	// ErrNotFound means no connection has the id.
	ErrNotFound = errors.New("store: not found")
	// ErrConflict means the connection changed since the version the caller
	// read (optimistic concurrency).
	ErrConflict = errors.New("store: version conflict")
	// ErrInvalidPageToken means a page token was not issued by this store.
	ErrInvalidPageToken = errors.New("store: invalid page token")
)

// Status values.
const (
	StatusPending      = "pending"
	StatusActive       = "active"
	StatusInvalid      = "invalid"
	StatusDisconnected = "disconnected"
)

// Connection is a connection's metadata as stored.
type Connection struct {
	ID                 string
	WorkspaceID        string
	ProjectID          string
	Name               string
	Connector          string
	Environment        string // "production" or "sandbox"
	AuthType           string // e.g. "basic", "api_key", "oauth2_authorization_code"
	Instance           Instance
	Status             string
	StatusReason       string
	LastError          string
	LastVerifyTime     time.Time // zero when never verified
	AuthorizedAs       string
	GrantedScopes      []string
	Owner              string
	ParentConnectionID string
	RuntimeUser        string
	CreateTime         time.Time
	UpdateTime         time.Time
	// Version increases by one on every change; the API's etag.
	Version int64
}

// Instance is the app instance a connection talks to.
type Instance struct {
	BaseURL   string
	Subdomain string
	OrgID     string
	Sandbox   bool
}

// ListQuery selects a page of a workspace's connections, newest first.
type ListQuery struct {
	WorkspaceID string
	PageSize    int
	PageToken   string
	// Filters; empty means any.
	Connector   string
	Status      string
	Environment string
}

// Store keeps connection metadata.
type Store interface {
	// Create stores c. CreateTime, UpdateTime and Version are set by the store.
	Create(ctx context.Context, c *Connection) error
	// Get returns the connection with id, or ErrNotFound.
	Get(ctx context.Context, id string) (*Connection, error)
	// List returns one page and the token of the next one ("" at the end).
	List(ctx context.Context, q ListQuery) ([]*Connection, string, error)
	// Update applies change to the stored connection atomically and returns the
	// result. With version > 0 it fails with ErrConflict unless the stored
	// version equals it. change must not alter ID, CreateTime or Version.
	Update(ctx context.Context, id string, version int64, change func(*Connection) error) (*Connection, error)
	// Delete removes the connection. With version > 0 it fails with
	// ErrConflict unless the stored version equals it.
	Delete(ctx context.Context, id string, version int64) error
	// Close releases the store's resources.
	Close() error
}
