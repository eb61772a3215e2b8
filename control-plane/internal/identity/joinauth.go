package identity

import (
	"bufio"
	"bytes"
	"context"
	"crypto/subtle"
	"fmt"
	"os"
	"strings"

	"google.golang.org/grpc/codes"

	identityv1 "github.com/weftmesh/weft/api/identity/v1"
)

// NodeAuthenticator proves which node a bootstrapping node proxy runs on.
// It returns nil only when the request's credential proves req.Node.
type NodeAuthenticator interface {
	AuthenticateNode(ctx context.Context, req *identityv1.BootstrapNodeRequest) error
}

// JoinTokens authenticates nodes in local mode: each node has a secret
// token, given to its node proxy in a file.
type JoinTokens map[string]string // node name -> token

var _ NodeAuthenticator = JoinTokens(nil)

// AuthenticateNode checks the join token in constant time.
func (j JoinTokens) AuthenticateNode(_ context.Context, req *identityv1.BootstrapNodeRequest) error {
	got := req.GetJoinToken()
	if got == "" {
		return Refuse(codes.Unauthenticated, ReasonBadCredential, "node %q: a join token is required in local mode", req.GetNode())
	}
	want, ok := j[req.GetNode()]
	// Compare even for unknown nodes so timing does not reveal which exist.
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 || !ok {
		return Refuse(codes.Unauthenticated, ReasonBadCredential, "node %q: join token not valid for this node", req.GetNode())
	}
	return nil
}

// LoadJoinTokens reads a join-token file: one "NODE TOKEN" pair per line;
// blank lines and lines starting with # are ignored.
func LoadJoinTokens(path string) (JoinTokens, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("join tokens: %w", err)
	}
	return ParseJoinTokens(b, path)
}

// ParseJoinTokens parses the join-token file format; name is used in errors.
func ParseJoinTokens(b []byte, name string) (JoinTokens, error) {
	out := JoinTokens{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for line := 1; sc.Scan(); line++ {
		text := strings.TrimSpace(sc.Text())
		if text == "" || strings.HasPrefix(text, "#") {
			continue
		}
		f := strings.Fields(text)
		if len(f) != 2 {
			return nil, fmt.Errorf("%s:%d: want \"NODE TOKEN\", got %d fields", name, line, len(f))
		}
		if len(f[1]) < 16 {
			return nil, fmt.Errorf("%s:%d: token for node %q is shorter than 16 characters", name, line, f[0])
		}
		if _, dup := out[f[0]]; dup {
			return nil, fmt.Errorf("%s:%d: node %q listed twice", name, line, f[0])
		}
		out[f[0]] = f[1]
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	return out, nil
}
