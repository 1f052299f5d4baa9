package containerd

import (
	"encoding/base64"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/registry"
)

const secretPassword = "s3cr3t-Pa55w0rd-never-logged"

func writeConfig(t *testing.T, body string, mode os.FileMode) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.json")
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil { // umask-proof
		t.Fatal(err)
	}
	return p
}

func mustNamed(t *testing.T, ref string) reference.Named {
	t.Helper()
	n, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func decodeAuth(t *testing.T, enc string) registry.AuthConfig {
	t.Helper()
	a, err := registry.DecodeAuthConfig(enc)
	if err != nil {
		t.Fatalf("DecodeAuthConfig: %v", err)
	}
	return *a
}

func TestRegistryAuthSelectsByHost(t *testing.T) {
	t.Parallel()
	basic := base64.StdEncoding.EncodeToString([]byte("alice:" + secretPassword))
	cfg := `{"auths": {
		"https://index.docker.io/v1/": {"auth": "` + base64.StdEncoding.EncodeToString([]byte("hubuser:hubpass")) + `"},
		"registry.example.com:5000": {"auth": "` + basic + `"},
		"http://Other.Example.com/v2/": {"username": "bob", "password": "pw"},
		"tokens.example.com": {"identitytoken": "idtok"}
	}}`
	path := writeConfig(t, cfg, 0o600)
	cases := []struct {
		ref, user, pass, token string
	}{
		{"busybox", "hubuser", "hubpass", ""},
		{"docker.io/library/busybox:1", "hubuser", "hubpass", ""},
		{"index.docker.io/someone/app", "hubuser", "hubpass", ""},
		{"registry.example.com:5000/team/web:1.4", "alice", secretPassword, ""},
		{"other.example.com/x", "bob", "pw", ""},
		{"tokens.example.com/x@sha256:" + strings.Repeat("a", 64), "", "", "idtok"},
		// Same host, another port: another registry, no credentials.
		{"registry.example.com/team/web", "", "", ""},
		{"registry.example.com:5001/team/web", "", "", ""},
		{"evil.example.com/registry.example.com/web", "", "", ""},
	}
	for _, c := range cases {
		t.Run(c.ref, func(t *testing.T) {
			enc, err := registryAuth(path, mustNamed(t, c.ref))
			if err != nil {
				t.Fatalf("registryAuth: %v", err)
			}
			if c.user == "" && c.token == "" {
				if enc != "" {
					t.Fatalf("registryAuth(%s) = credentials for %+v; want none", c.ref, decodeAuth(t, enc).ServerAddress)
				}
				return
			}
			a := decodeAuth(t, enc)
			if a.Username != c.user || a.Password != c.pass || a.IdentityToken != c.token {
				t.Errorf("registryAuth(%s) = user %q token %q; want user %q token %q", c.ref, a.Username, a.IdentityToken, c.user, c.token)
			}
			if a.Auth != "" {
				t.Errorf("auth field still set; the daemon wants username/password")
			}
		})
	}
}

func TestRegistryAuthNoPathNoEntry(t *testing.T) {
	t.Parallel()
	if enc, err := registryAuth("", mustNamed(t, "busybox")); enc != "" || err != nil {
		t.Errorf("registryAuth(no path) = %q, %v; want anonymous", enc, err)
	}
	p := writeConfig(t, `{"auths": {}}`, 0o600)
	if enc, err := registryAuth(p, mustNamed(t, "busybox")); enc != "" || err != nil {
		t.Errorf("registryAuth(no entry) = %q, %v; want anonymous", enc, err)
	}
	p = writeConfig(t, `{"credHelpers": {"registry.example.com": "ecr-login"}}`, 0o600)
	if _, err := registryAuth(p, mustNamed(t, "registry.example.com/x")); err == nil || !strings.Contains(err.Error(), "ecr-login") {
		t.Errorf("registryAuth(credential helper) error = %v; want one naming the unsupported helper", err)
	}
}

// The file is operator-owned: a symlink, a writable file, a FIFO or a huge
// file is refused, and no error ever quotes what is in the file.
func TestRegistryAuthRefusesUnsafeFiles(t *testing.T) {
	t.Parallel()
	good := `{"auths": {"r.example.com": {"username": "u", "password": "` + secretPassword + `"}}}`
	dir := t.TempDir()
	link := filepath.Join(dir, "link.json")
	if err := os.Symlink(writeConfig(t, good, 0o600), link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	huge := writeConfig(t, `{"auths": {}, "x": "`+strings.Repeat("a", maxDockerConfigSize)+`"}`, 0o600)
	cases := map[string]string{
		"symlink":        link,
		"group-writable": writeConfig(t, good, 0o620),
		"world-writable": writeConfig(t, good, 0o606),
		"fifo":           fifo,
		"directory":      dir,
		"too large":      huge,
	}
	for name, path := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := registryAuth(path, mustNamed(t, "r.example.com/x"))
			if !errors.Is(err, ErrUnsafeDockerConfig) {
				t.Errorf("registryAuth(%s) error = %v; want ErrUnsafeDockerConfig", name, err)
			}
		})
	}
	if _, err := registryAuth(filepath.Join(dir, "missing.json"), mustNamed(t, "r.example.com/x")); err == nil {
		t.Error("registryAuth(missing file) succeeded; the operator configured a path, its absence is an error")
	}
}

func TestRegistryAuthErrorsNeverQuoteTheFile(t *testing.T) {
	t.Parallel()
	bad := map[string]string{
		"syntax":       `{"auths": {"r.example.com": {"password": "` + secretPassword + `" "x"}}}`,
		"truncated":    `{"auths": {"r.example.com": {"password": "` + secretPassword,
		"bad type":     `{"auths": {"r.example.com": {"password": ["` + secretPassword + `"]}}}`,
		"bad base64":   `{"auths": {"r.example.com": {"auth": "` + secretPassword + `!!"}}}`,
		"no colon":     `{"auths": {"r.example.com": {"auth": "` + base64.StdEncoding.EncodeToString([]byte(secretPassword)) + `"}}}`,
		"no user":      `{"auths": {"r.example.com": {"password": "` + secretPassword + `"}}}`,
		"leading byte": secretPassword,
	}
	for name, body := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := registryAuth(writeConfig(t, body, 0o600), mustNamed(t, "r.example.com/x"))
			if err == nil {
				t.Fatal("registryAuth succeeded on a broken file")
			}
			for _, frag := range []string{secretPassword, secretPassword[:1] + "'", "'" + secretPassword[:1]} {
				if strings.Contains(err.Error(), frag) {
					t.Errorf("error %q quotes the file (%q)", err, frag)
				}
			}
			t.Logf("%v", err)
		})
	}
}

func TestRegistryHost(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"https://index.docker.io/v1/": "docker.io",
		"registry-1.docker.io":        "docker.io",
		"docker.io":                   "docker.io",
		"http://localhost:5000/v2/":   "localhost:5000",
		"Registry.Example.com":        "registry.example.com",
		"127.0.0.1:5000":              "127.0.0.1:5000",
	} {
		if got := registryHost(in); got != want {
			t.Errorf("registryHost(%q) = %q; want %q", in, got, want)
		}
	}
}
