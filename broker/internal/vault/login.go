package vault

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// Login authenticates the client and, until ctx ends, keeps its token alive:
// renews it while Vault allows, and logs in again when renewal ends (max TTL
// reached, token revoked). The first login happens before Login returns, so
// that bad credentials stop startup with a clear error.
func (c *Client) Login(ctx context.Context, a Auth, logger *slog.Logger) error {
	secret, err := c.login(ctx, a)
	if err != nil {
		return fmt.Errorf("vault.Login (%s): %w", a.Method, err)
	}
	if secret == nil { // a plain token: nothing to renew here
		return nil
	}
	go c.keepAlive(ctx, a, secret, logger)
	return nil
}

func (c *Client) login(ctx context.Context, a Auth) (*vaultapi.Secret, error) {
	var method vaultapi.AuthMethod
	var err error
	switch a.Method {
	case "token":
		c.api.SetToken(a.Token)
		return nil, nil
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

func (c *Client) keepAlive(ctx context.Context, a Auth, secret *vaultapi.Secret, logger *slog.Logger) {
	for {
		w, err := c.api.NewLifetimeWatcher(&vaultapi.LifetimeWatcherInput{Secret: secret})
		if err != nil {
			logger.Error("vault token watcher", "err", err)
			return
		}
		go w.Start()
		renewing := true
		for renewing {
			select {
			case <-ctx.Done():
				w.Stop()
				return
			case err := <-w.DoneCh():
				// Renewal is over: the token reached its max TTL or was revoked.
				if err != nil {
					logger.Warn("vault token renewal ended", "err", err)
				}
				renewing = false
			case <-w.RenewCh():
				logger.Debug("vault token renewed")
			}
		}
		w.Stop()
		for wait := time.Second; ; wait = min(2*wait, 30*time.Second) {
			if secret, err = c.login(ctx, a); err == nil {
				logger.Info("logged in to vault again", "method", a.Method)
				break
			}
			logger.Error("vault login failed; retrying", "method", a.Method, "err", err, "in", wait)
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}
}
