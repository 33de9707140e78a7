package api_test

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	brokerv1 "github.com/integrationhub/connections/gen/integrationhub/broker/v1"

	"github.com/integrationhub/connections/broker/internal/api"
	"github.com/integrationhub/connections/broker/internal/vault"
)

// withWebhooks keeps webhook signing secrets in the test broker's Vault.
func withWebhooks(d *api.Deps) { d.Webhooks = d.Secrets.(*vault.Client) }

const webhookID = "7d6c5b4a-3333-4000-8000-00000000a001"

// The Standard Webhooks test vector: secret "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw".
const (
	vectorKey       = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorMessageID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTimestamp = 1614265330
	vectorPayload   = `{"test": 2432232314}`
	vectorSignature = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

// expectedSignature computes the Standard Webhooks v1 signature
// independently of the broker.
func expectedSignature(key []byte, msgID string, ts int64, payload []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(msgID + "." + strconv.FormatInt(ts, 10) + "." + string(payload)))
	return "v1," + base64.StdEncoding.EncodeToString(m.Sum(nil))
}

func sign(gen, msgID string, ts int64, payload []byte) *brokerv1.SignWebhookRequest {
	return &brokerv1.SignWebhookRequest{WebhookId: webhookID, SecretGeneration: gen, MessageId: msgID, Timestamp: ts, Payload: payload}
}

// PutWebhookSecret stores a generation once; SignWebhook signs with it the
// Standard Webhooks way; an unknown generation is NotFound.
func TestWebhookSign(t *testing.T) {
	c := newBroker(t, withWebhooks)
	ctx := t.Context()
	key, _ := base64.StdEncoding.DecodeString(vectorKey)
	if _, err := c.admin.PutWebhookSecret(ctx, &brokerv1.PutWebhookSecretRequest{WebhookId: webhookID, SecretGeneration: "g1", Secret: key}); err != nil {
		t.Fatal(err)
	}
	got, err := c.admin.SignWebhook(ctx, sign("g1", vectorMessageID, vectorTimestamp, []byte(vectorPayload)))
	if err != nil {
		t.Fatal(err)
	}
	if got.GetSignature() != vectorSignature {
		t.Errorf("SignWebhook = %q, want the test vector's %q", got.GetSignature(), vectorSignature)
	}
	if want := expectedSignature(key, vectorMessageID, vectorTimestamp, []byte(vectorPayload)); want != vectorSignature {
		t.Errorf("the test's own HMAC = %q, want %q", want, vectorSignature)
	}

	// Another generation, another key, an empty payload.
	key2 := bytes.Repeat([]byte{0xa5}, 64)
	if _, err := c.admin.PutWebhookSecret(ctx, &brokerv1.PutWebhookSecretRequest{WebhookId: webhookID, SecretGeneration: "g2", Secret: key2}); err != nil {
		t.Fatal(err)
	}
	got, err = c.admin.SignWebhook(ctx, sign("g2", "msg_2", 1700000000, nil))
	if err != nil {
		t.Fatal(err)
	}
	if want := expectedSignature(key2, "msg_2", 1700000000, nil); got.GetSignature() != want {
		t.Errorf("SignWebhook g2 = %q, want %q", got.GetSignature(), want)
	}

	// A generation is never overwritten: the first key stays.
	_, err = c.admin.PutWebhookSecret(ctx, &brokerv1.PutWebhookSecretRequest{WebhookId: webhookID, SecretGeneration: "g1", Secret: key2})
	if status.Code(err) != codes.AlreadyExists {
		t.Errorf("second PutWebhookSecret of g1: %v, want AlreadyExists", err)
	}
	got, err = c.admin.SignWebhook(ctx, sign("g1", vectorMessageID, vectorTimestamp, []byte(vectorPayload)))
	if err != nil || got.GetSignature() != vectorSignature {
		t.Errorf("SignWebhook g1 after a refused overwrite = %v, %v; want the first key's signature", got, err)
	}

	for _, req := range []*brokerv1.SignWebhookRequest{
		sign("g9", "msg_1", 1, nil),
		{WebhookId: "7d6c5b4a-3333-4000-8000-00000000a0ff", SecretGeneration: "g1", MessageId: "msg_1", Timestamp: 1},
	} {
		if _, err := c.admin.SignWebhook(ctx, req); status.Code(err) != codes.NotFound {
			t.Errorf("SignWebhook %s/%s: %v, want NotFound", req.GetWebhookId(), req.GetSecretGeneration(), err)
		}
	}
}

// DeleteWebhookSecret destroys one generation or all; signing with a
// destroyed one is NotFound, also for a key this broker kept in memory.
func TestWebhookDelete(t *testing.T) {
	c := newBroker(t, withWebhooks)
	ctx := t.Context()
	keys := map[string][]byte{"g1": bytes.Repeat([]byte{1}, 32), "g2": bytes.Repeat([]byte{2}, 32), "g3": bytes.Repeat([]byte{3}, 32)}
	for g, k := range keys {
		if _, err := c.admin.PutWebhookSecret(ctx, &brokerv1.PutWebhookSecretRequest{WebhookId: webhookID, SecretGeneration: g, Secret: k}); err != nil {
			t.Fatal(err)
		}
		// Signing keeps the key in memory.
		if _, err := c.admin.SignWebhook(ctx, sign(g, "m", 1, nil)); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.admin.DeleteWebhookSecret(ctx, &brokerv1.DeleteWebhookSecretRequest{WebhookId: webhookID, SecretGeneration: "g1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.admin.SignWebhook(ctx, sign("g1", "m", 1, nil)); status.Code(err) != codes.NotFound {
		t.Errorf("SignWebhook with a destroyed generation: %v, want NotFound", err)
	}
	got, err := c.admin.SignWebhook(ctx, sign("g2", "m", 1, nil))
	if err != nil || got.GetSignature() != expectedSignature(keys["g2"], "m", 1, nil) {
		t.Errorf("SignWebhook g2 after destroying g1 = %v, %v", got, err)
	}
	if gens := listedGenerations(t, c, 0); gens != webhookID+"/g2,"+webhookID+"/g3" {
		t.Errorf("ListWebhookSecrets after destroying g1 = %q", gens)
	}
	// Deleting what does not exist succeeds.
	if _, err := c.admin.DeleteWebhookSecret(ctx, &brokerv1.DeleteWebhookSecretRequest{WebhookId: webhookID, SecretGeneration: "g1"}); err != nil {
		t.Errorf("deleting a destroyed generation again: %v", err)
	}
	if _, err := c.admin.DeleteWebhookSecret(ctx, &brokerv1.DeleteWebhookSecretRequest{WebhookId: webhookID, AllGenerations: true}); err != nil {
		t.Fatal(err)
	}
	for _, g := range []string{"g2", "g3"} {
		if _, err := c.admin.SignWebhook(ctx, sign(g, "m", 1, nil)); status.Code(err) != codes.NotFound {
			t.Errorf("SignWebhook %s after destroying all: %v, want NotFound", g, err)
		}
	}
	if gens := listedGenerations(t, c, 0); gens != "" {
		t.Errorf("ListWebhookSecrets after destroying all = %q, want none", gens)
	}
	if _, err := c.admin.DeleteWebhookSecret(ctx, &brokerv1.DeleteWebhookSecretRequest{WebhookId: webhookID, AllGenerations: true}); err != nil {
		t.Errorf("destroying all of a webhook with none: %v", err)
	}
	if _, err := c.admin.DeleteWebhookSecret(ctx, &brokerv1.DeleteWebhookSecretRequest{WebhookId: webhookID}); status.Code(err) != codes.InvalidArgument {
		t.Errorf("DeleteWebhookSecret naming neither a generation nor all: %v, want InvalidArgument", err)
	}
}

// listedGenerations pages through ListWebhookSecrets and returns
// "<webhook id>/<generation>" of every entry, comma-separated.
func listedGenerations(t *testing.T, c clients, pageSize int32) string {
	t.Helper()
	var out []string
	token := ""
	for range 100 {
		resp, err := c.admin.ListWebhookSecrets(t.Context(), &brokerv1.ListWebhookSecretsRequest{PageSize: pageSize, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range resp.GetSecrets() {
			out = append(out, e.GetWebhookId()+"/"+e.GetSecretGeneration())
		}
		if token = resp.GetNextPageToken(); token == "" {
			return strings.Join(out, ",")
		}
	}
	t.Fatal("ListWebhookSecrets did not end")
	return ""
}

// ListWebhookSecrets pages by webhook id, whole webhooks per page.
func TestWebhookList(t *testing.T) {
	c := newBroker(t, withWebhooks)
	ctx := t.Context()
	var want []string
	for i := range 5 {
		wid := fmt.Sprintf("7d6c5b4a-3333-4000-8000-00000000b00%d", i)
		gens := []string{"g1"}
		if i%2 == 0 {
			gens = append(gens, "g2")
		}
		for _, g := range gens {
			if _, err := c.admin.PutWebhookSecret(ctx, &brokerv1.PutWebhookSecretRequest{WebhookId: wid, SecretGeneration: g, Secret: bytes.Repeat([]byte{byte(i)}, 24)}); err != nil {
				t.Fatal(err)
			}
			want = append(want, wid+"/"+g)
		}
	}
	if got := listedGenerations(t, c, 0); got != strings.Join(want, ",") {
		t.Errorf("ListWebhookSecrets (one page) =\n %q\nwant\n %q", got, strings.Join(want, ","))
	}
	if got := listedGenerations(t, c, 2); got != strings.Join(want, ",") {
		t.Errorf("ListWebhookSecrets (pages of 2) =\n %q\nwant\n %q", got, strings.Join(want, ","))
	}
	// Pages of two webhooks: 3+2 entries, 3+2 entries, then 2 (the last
	// webhook), each page ending on a whole webhook.
	token := ""
	var sizes []int
	for {
		resp, err := c.admin.ListWebhookSecrets(ctx, &brokerv1.ListWebhookSecretsRequest{PageSize: 2, PageToken: token})
		if err != nil {
			t.Fatal(err)
		}
		ids := map[string]bool{}
		for _, e := range resp.GetSecrets() {
			ids[e.GetWebhookId()] = true
		}
		if len(ids) > 2 {
			t.Errorf("a page of 2 webhooks holds %d", len(ids))
		}
		sizes = append(sizes, len(resp.GetSecrets()))
		if token = resp.GetNextPageToken(); token == "" {
			break
		}
	}
	if fmt.Sprint(sizes) != "[3 3 2]" {
		t.Errorf("page sizes %v, want [3 3 2]", sizes)
	}
}

// With Vault down, a key kept in memory still signs; everything else is
// Unavailable.
func TestWebhookVaultDown(t *testing.T) {
	c := newBroker(t, withWebhooks)
	ctx := t.Context()
	key := bytes.Repeat([]byte{7}, 32)
	if _, err := c.admin.PutWebhookSecret(ctx, &brokerv1.PutWebhookSecretRequest{WebhookId: webhookID, SecretGeneration: "g1", Secret: key}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.admin.SignWebhook(ctx, sign("g1", "m", 1, nil)); err != nil {
		t.Fatal(err)
	}
	if err := c.vault.Stop(); err != nil {
		t.Fatal(err)
	}
	got, err := c.admin.SignWebhook(ctx, sign("g1", "m", 2, []byte("p")))
	if err != nil || got.GetSignature() != expectedSignature(key, "m", 2, []byte("p")) {
		t.Errorf("SignWebhook with Vault down and the key in memory = %v, %v", got, err)
	}
	calls := map[string]func() error{
		"SignWebhook another generation": func() error { _, err := c.admin.SignWebhook(ctx, sign("g2", "m", 1, nil)); return err },
		"PutWebhookSecret": func() error {
			_, err := c.admin.PutWebhookSecret(ctx, &brokerv1.PutWebhookSecretRequest{WebhookId: webhookID, SecretGeneration: "g2", Secret: key})
			return err
		},
		"DeleteWebhookSecret": func() error {
			_, err := c.admin.DeleteWebhookSecret(ctx, &brokerv1.DeleteWebhookSecretRequest{WebhookId: webhookID, AllGenerations: true})
			return err
		},
		"ListWebhookSecrets": func() error {
			_, err := c.admin.ListWebhookSecrets(ctx, &brokerv1.ListWebhookSecretsRequest{})
			return err
		},
	}
	for name, call := range calls {
		if err := call(); status.Code(err) != codes.Unavailable {
			t.Errorf("%s with Vault down: %v, want Unavailable", name, err)
		}
	}
}

// Without Deps.Webhooks the calls refuse.
func TestWebhookOff(t *testing.T) {
	c := newBroker(t)
	_, err := c.admin.SignWebhook(t.Context(), sign("g1", "m", 1, nil))
	if status.Code(err) != codes.Unimplemented {
		t.Errorf("SignWebhook without webhook secrets: %v, want Unimplemented", err)
	}
}

// lockedBuffer is a log destination the handlers may write concurrently.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// A signing key appears in no error and no log line of a failing call, in
// any encoding.
func TestWebhookKeyCanary(t *testing.T) {
	var logs lockedBuffer
	c := newBroker(t, withWebhooks, func(d *api.Deps) {
		d.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	ctx := t.Context()
	canary := []byte("webhook-key-canary-0123456789abcdef")
	short := []byte("short-canary")
	forms := func(k []byte) []string {
		return []string{string(k), base64.StdEncoding.EncodeToString(k), base64.RawURLEncoding.EncodeToString(k), hex.EncodeToString(k),
			fmt.Sprint(k)}
	}
	var errs []error
	put := func(gen string, k []byte) {
		_, err := c.admin.PutWebhookSecret(ctx, &brokerv1.PutWebhookSecretRequest{WebhookId: webhookID, SecretGeneration: gen, Secret: k})
		errs = append(errs, err)
	}
	put("g1", canary)
	if errs[0] != nil {
		t.Fatal(errs[0])
	}
	put("g1", canary) // AlreadyExists
	put("g2", short)  // InvalidArgument (too short)
	_, err := c.admin.SignWebhook(ctx, sign("g9", "m", 1, nil))
	errs = append(errs, err) // NotFound
	if err := c.vault.Stop(); err != nil {
		t.Fatal(err)
	}
	put("g3", canary) // Unavailable, logged
	_, err = c.admin.SignWebhook(ctx, sign("g1", "m", 1, nil))
	errs = append(errs, err) // Unavailable, logged

	want := []codes.Code{codes.OK, codes.AlreadyExists, codes.InvalidArgument, codes.NotFound, codes.Unavailable, codes.Unavailable}
	for i, err := range errs {
		if status.Code(err) != want[i] {
			t.Errorf("call %d: %v, want %v", i, err, want[i])
		}
		for _, f := range append(forms(canary), forms(short)...) {
			if err != nil && strings.Contains(err.Error(), f) {
				t.Errorf("call %d: the error shows the key: %v", i, err)
			}
		}
	}
	out := logs.String()
	if !strings.Contains(out, "vault unavailable") {
		t.Errorf("the failing calls logged nothing; want the Vault failures logged: %q", out)
	}
	for _, f := range append(forms(canary), forms(short)...) {
		if strings.Contains(out, f) {
			t.Errorf("the logs show the key (%q): %s", f, out)
		}
	}
}
