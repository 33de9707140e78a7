package store

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/integrationhub/connections/internal/validtext"
)

// PageToken is the keyset position after which the next page starts: lists
// run newest first by (create time, id).
type PageToken struct {
	CreateTime time.Time
	ID         string
}

// Encode returns the opaque form handed to callers.
func (t PageToken) Encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(t.CreateTime.UnixNano(), 10) + "/" + t.ID))
}

// DecodePageToken parses a token from Encode; "" is the first page.
func DecodePageToken(s string) (PageToken, bool, error) {
	if s == "" {
		return PageToken{}, false, nil
	}
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return PageToken{}, false, fmt.Errorf("%w", ErrInvalidPageToken)
	}
	ts, id, ok := strings.Cut(string(b), "/")
	n, err := strconv.ParseInt(ts, 10, 64)
	// The id goes into a query: text a database cannot compare (a NUL byte,
	// invalid UTF-8) would fail there, differently on each database.
	if !ok || err != nil || id == "" || !validtext.Valid(id) {
		return PageToken{}, false, fmt.Errorf("%w", ErrInvalidPageToken)
	}
	return PageToken{CreateTime: time.Unix(0, n).UTC(), ID: id}, true, nil
}
