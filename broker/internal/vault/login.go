package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	"github.com/hashicorp/vault/api/auth/approle"
	"github.com/hashicorp/vault/api/auth/kubernetes"
)

// Auth says how the broker logs in to Vault.
type Auth struct {
	// Method is "token", "kubernetes" or "approle".
	Method string
	// Token is the Vault token for the token method.
	Token string
	// K8sRole, K8sMount and K8sTokenPath configure the kubernetes method:
	// the pod's service-account token is traded for a Vault token.
	K8sRole, K8sMount, K8sTokenPath string
	// AppRoleMount, RoleID and SecretID configure the approle method.
	AppRoleMount, RoleID, SecretID string
}

// session is the client's current Vault token: how it was obtained, and
// until when it is good.
type session struct {
	auth   Auth
	logger *slog.Logger

	mu     sync.Mutex
	secret *vaultapi.Secret // the login (or the token's lookup-self) answer
	expiry time.Time        // zero: the token does not expire (or is unknown yet)
	ok     bool             // false once renewal and log-in again have failed
}

// Login authenticates the client. The first login happens before Login
// returns, so that bad credentials stop startup with a clear error: with the
// token method the token is looked up (lookup-self), so that a wrong or
// expired token is refused here, not on the first worker call. Login does not
// keep the token alive: run KeepTokenAlive in the program's task group.
func (c *Client) Login(ctx context.Context, a Auth, logger *slog.Logger) error {
	s := &session{auth: a, logger: logger}
	secret, err := c.login(ctx, a)
	if err != nil && !(a.Method == "token" && errors.Is(err, ErrUnavailable)) {
		return fmt.Errorf("vault.Login (%s): %w", a.Method, err)
	}
	if err != nil {
		// Vault is down: the token is checked (and renewed) once it is back.
		logger.Warn("vault unreachable at startup; the token will be looked up when it answers", "err", err)
	}
	s.set(secret)
	c.session = s
	return nil
}

// login obtains a token: the given one (looked up), or a new one from the
// kubernetes or approle method.
func (c *Client) login(ctx context.Context, a Auth) (*vaultapi.Secret, error) {
	var method vaultapi.AuthMethod
	var err error
	switch a.Method {
	case "token":
		c.api.SetToken(a.Token)
		s, err := c.api.Auth().Token().LookupSelfWithContext(ctx)
		if err != nil {
			return nil, classify(err)
		}
		return lookupAsLogin(s, a.Token)
	case "kubernetes":
		method, err = kubernetes.NewKubernetesAuth(a.K8sRole,
			kubernetes.WithServiceAccountTokenPath(a.K8sTokenPath), kubernetes.WithMountPath(a.K8sMount))
	case "approle":
		method, err = approle.NewAppRoleAuth(a.RoleID, &approle.SecretID{FromString: a.SecretID}, approle.WithMountPath(a.AppRoleMount))
	default:
		return nil, fmt.Errorf("unknown auth method %q", a.Method)
	}
	if err != nil {
		return nil, err
	}
	secret, err := c.api.Auth().Login(ctx, method)
	if err != nil {
		return nil, classify(err)
	}
	if secret == nil || secret.Auth == nil {
		return nil, errors.New("login returned no token")
	}
	return secret, nil
}

// lookupAsLogin turns a lookup-self answer into the shape of a login answer,
// which the lifetime watcher renews: renewable, with the token's remaining TTL.
func lookupAsLogin(s *vaultapi.Secret, token string) (*vaultapi.Secret, error) {
	if s == nil || s.Data == nil {
		return nil, errors.New("lookup-self returned nothing")
	}
	ttl, err := s.TokenTTL()
	if err != nil {
		return nil, fmt.Errorf("lookup-self: ttl: %w", err)
	}
	renewable, err := s.TokenIsRenewable()
	if err != nil {
		return nil, fmt.Errorf("lookup-self: renewable: %w", err)
	}
	return &vaultapi.Secret{Auth: &vaultapi.SecretAuth{ClientToken: token, Renewable: renewable,
		LeaseDuration: int(ttl / time.Second)}}, nil
}

func (s *session) set(secret *vaultapi.Secret) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.secret = secret
	s.ok = secret != nil
	s.expiry = time.Time{}
	if secret != nil && secret.Auth != nil && secret.Auth.LeaseDuration > 0 {
		s.expiry = time.Now().Add(time.Duration(secret.Auth.LeaseDuration) * time.Second)
	}
}

// TokenExpiry is when the broker's current Vault token expires unless it is
// renewed; zero when it does not expire or nothing is known yet.
func (c *Client) TokenExpiry() time.Time {
	if c.session == nil {
		return time.Time{}
	}
	c.session.mu.Lock()
	defer c.session.mu.Unlock()
	return c.session.expiry
}

// TokenValid reports whether the broker holds a Vault token that has not
// expired and whose last renewal or login did not fail for good.
func (c *Client) TokenValid() bool {
	if c.session == nil {
		return false
	}
	c.session.mu.Lock()
	defer c.session.mu.Unlock()
	return c.session.ok && (c.session.expiry.IsZero() || time.Now().Before(c.session.expiry))
}

// KeepTokenAlive keeps the token of Login alive until ctx ends: it renews the
// token while Vault allows (a periodic token forever; a login's token up to
// its max TTL), logs in again when renewal ends (kubernetes, approle), and
// for the token method, whose token cannot be replaced, logs at error level
// when the token cannot be renewed, with when it expires, and keeps trying.
// Run it in the program's task group; it returns nil when ctx ends.
func (c *Client) KeepTokenAlive(ctx context.Context) error {
	s := c.session
	if s == nil {
		return errors.New("vault.KeepTokenAlive: Login first")
	}
	for wait := time.Second; ; {
		s.mu.Lock()
		secret := s.secret
		s.mu.Unlock()
		if secret != nil {
			if !secret.Auth.Renewable {
				if secret.Auth.LeaseDuration == 0 {
					s.logger.Info("vault token does not expire; nothing to renew", "method", s.auth.Method)
				} else {
					s.logger.Error("vault token is not renewable: it expires and the broker then loses Vault; use a periodic or renewable token",
						"method", s.auth.Method, "expires", c.TokenExpiry())
				}
				if s.auth.Method == "token" || secret.Auth.LeaseDuration == 0 {
					<-ctx.Done()
					return nil
				}
				// A login's token that cannot be renewed: log in again at 2/3 of its TTL.
				select {
				case <-ctx.Done():
					return nil
				case <-time.After(time.Duration(secret.Auth.LeaseDuration) * time.Second * 2 / 3):
				}
			} else if err := c.watch(ctx, s, secret); err != nil {
				return nil // ctx ended
			}
			wait = time.Second
		}
		// Renewal is over (max TTL, revoked, Vault unreachable past the TTL)
		// or there was no token yet: get one.
		next, err := c.login(ctx, s.auth)
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			msg := "vault login failed; retrying"
			if s.auth.Method == "token" {
				msg = "vault token cannot be looked up (expired, revoked or Vault unreachable): the broker cannot reach secrets until it gets a valid token; retrying"
			}
			s.logger.Error(msg, "method", s.auth.Method, "err", err, "in", wait)
			s.set(nil)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(wait):
			}
			wait = min(2*wait, 30*time.Second)
			continue
		}
		if s.auth.Method != "token" {
			s.logger.Info("logged in to vault again", "method", s.auth.Method)
		}
		s.set(next)
	}
}

// watch renews secret with a lifetime watcher until renewal ends (nil) or ctx
// ends (ctx.Err()).
func (c *Client) watch(ctx context.Context, s *session, secret *vaultapi.Secret) error {
	w, err := c.api.NewLifetimeWatcher(&vaultapi.LifetimeWatcherInput{Secret: secret,
		// Keep retrying failed renewals until the token's TTL is spent.
		RenewBehavior: vaultapi.RenewBehaviorIgnoreErrors})
	if err != nil {
		s.logger.Error("vault token watcher", "err", err)
		return nil
	}
	done := make(chan struct{})
	go func() { w.Start(); close(done) }()
	defer func() { w.Stop(); <-done }()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-w.DoneCh():
			if err != nil {
				s.logger.Error("vault token renewal failed", "method", s.auth.Method, "err", err, "expires", c.TokenExpiry())
			} else {
				s.logger.Warn("vault token renewal ended (max TTL reached)", "method", s.auth.Method, "expires", c.TokenExpiry())
			}
			return nil
		case r := <-w.RenewCh():
			s.set(r.Secret)
			s.logger.Debug("vault token renewed", "method", s.auth.Method, "ttl_seconds", r.Secret.Auth.LeaseDuration)
		}
	}
}
