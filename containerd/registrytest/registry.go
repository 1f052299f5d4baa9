// Package registrytest runs a real image registry (Debian's docker-registry,
// the CNCF distribution server) on 127.0.0.1 for tests, with htpasswd
// authentication and an access log the test can count requests in, plus a
// TCP proxy in front of it that the test can throttle or pause.
//
// The Docker daemon accepts plain HTTP for registries on 127.0.0.0/8, so no
// TLS is needed. Without the registry binary a test is skipped with the
// reason, or fails when CI=true. The binary is looked up in $DOCKER_REGISTRY,
// bin/docker-registry under the module root (what `make test` unpacks),
// /usr/bin/docker-registry and $PATH.
//
// Pushing uses the Docker client directly: this package is test code, the
// executor itself never pushes. It is not a stable interface.
package registrytest

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/mdx-executor/mdx/containerd/containerdtest"
)

// Registry is one running registry server.
type Registry struct {
	// Host is "127.0.0.1:port", the registry part of image references.
	Host string
	// User and Password are the only valid credentials.
	User, Password string

	dir string
	log *lockedBuffer
	cmd *exec.Cmd
	mu  sync.Mutex // guards stopped
	// stopped is true once Stop has run.
	stopped bool
}

// Binary returns the path of the docker-registry binary, or skips t (fails it
// under CI=true) when there is none.
func Binary(t testing.TB) string {
	t.Helper()
	var tried []string
	if p := os.Getenv("DOCKER_REGISTRY"); p != "" {
		tried = append(tried, p)
		if isExec(p) {
			return p
		}
	}
	if root, err := containerdtest.ModuleRoot(); err == nil {
		p := filepath.Join(root, "bin", "docker-registry")
		tried = append(tried, p)
		if isExec(p) {
			return p
		}
	}
	tried = append(tried, "/usr/bin/docker-registry")
	if isExec("/usr/bin/docker-registry") {
		return "/usr/bin/docker-registry"
	}
	if p, err := exec.LookPath("docker-registry"); err == nil {
		return p
	}
	msg := fmt.Sprintf("docker-registry binary not found (tried %s and $PATH; `make bin/docker-registry` unpacks Debian's)", strings.Join(tried, ", "))
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s (CI=true, so this is a failure)", msg)
	}
	t.Skip(msg)
	return ""
}

func isExec(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0
}

// Start runs a registry on a free 127.0.0.1 port with one user and a random
// password, and stops it when the test ends.
func Start(t testing.TB) *Registry {
	t.Helper()
	bin := Binary(t)
	dir := t.TempDir()
	r := &Registry{User: "mdx-" + containerdtest.RandHex(3), Password: "pw-" + containerdtest.RandHex(12), dir: dir, log: &lockedBuffer{}}
	port, err := freePort()
	if err != nil {
		t.Fatal(err)
	}
	r.Host = fmt.Sprintf("127.0.0.1:%d", port)
	cfgPath, err := WriteServerConfig(dir, r.Host, r.User, r.Password)
	if err != nil {
		t.Fatal(err)
	}
	r.cmd = exec.Command(bin, "serve", cfgPath)
	r.cmd.Stdout = r.log
	r.cmd.Stderr = r.log
	if err := r.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	t.Cleanup(func() {
		r.Stop()
		if t.Failed() {
			t.Logf("registry log:\n%s", r.log.String())
		}
	})
	if err := r.waitReady(20 * time.Second); err != nil {
		t.Fatalf("registry on %s: %v\n%s", r.Host, err, r.log.String())
	}
	return r
}

// WriteServerConfig writes a registry configuration into dir: storage under
// dir/data, listening on addr, htpasswd authentication (bcrypt) with one
// user, and the access log on. It returns the path of the config file to
// give to `docker-registry serve`.
func WriteServerConfig(dir, addr, user, password string) (string, error) {
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return "", err
	}
	htpasswd := filepath.Join(dir, "htpasswd")
	if err := os.WriteFile(htpasswd, []byte(user+":"+string(hash)+"\n"), 0o600); err != nil {
		return "", err
	}
	config := fmt.Sprintf(`version: 0.1
log:
  level: info
  accesslog:
    disabled: false
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
auth:
  htpasswd:
    realm: mdx-test
    path: %s
`, filepath.Join(dir, "data"), addr, htpasswd)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(config), 0o600); err != nil {
		return "", err
	}
	return cfgPath, nil
}

// waitReady polls /v2/ until the registry answers (401 without credentials).
func (r *Registry) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get("http://" + r.Host + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusUnauthorized {
				return nil
			}
			err = fmt.Errorf("GET /v2/ answered %s, want 401", resp.Status)
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Stop kills the registry; later pulls from it fail with connection refused.
func (r *Registry) Stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	r.stopped = true
	_ = r.cmd.Process.Kill()
	_ = r.cmd.Wait()
}

// Log returns everything the registry wrote so far (its access log
// included).
func (r *Registry) Log() string { return r.log.String() }

// ManifestGets counts the GET requests for manifests of repo (for any tag or
// digest) that the registry answered, from its access log.
func (r *Registry) ManifestGets(repo string) int {
	re := regexp.MustCompile(`"GET /v2/` + regexp.QuoteMeta(repo) + `/manifests/[^ ]+ HTTP/[0-9.]+" (\d+)`)
	n := 0
	sc := bufio.NewScanner(strings.NewReader(r.log.String()))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if re.MatchString(sc.Text()) {
			n++
		}
	}
	return n
}

// DockerConfig writes a Docker config.json (mode 0600) for host with the
// given credentials and returns its path.
func DockerConfig(t testing.TB, host, user, password string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.json")
	body := fmt.Sprintf(`{"auths": {%q: {"username": %q, "password": %q}}}`, host, user, password)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// lockedBuffer collects a process's output while the test reads it.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
