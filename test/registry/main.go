// Command registry runs a local image registry (Debian's docker-registry) on
// 127.0.0.1 with htpasswd authentication, for trying private pulls with the
// executor by hand (`make registry`). It writes, in -dir, the server's
// configuration, a random password (kept across runs) and a Docker
// config.json with the credentials, of the kind an operator names as
// docker-config in the executor's policy file, then runs the registry in the
// foreground until interrupted.
package main

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/mdx-executor/mdx/containerd/registrytest"
)

func main() {
	bin := flag.String("bin", "/usr/bin/docker-registry", "the docker-registry binary")
	dir := flag.String("dir", "bin/registry", "directory for the registry's configuration and storage")
	addr := flag.String("addr", "127.0.0.1:5000", "listen address (Docker pulls plain HTTP only from 127.0.0.0/8)")
	user := flag.String("user", "mdx", "the registry's one user")
	flag.Parse()
	if err := run(*bin, *dir, *addr, *user); err != nil {
		fmt.Fprintln(os.Stderr, "registry:", err)
		os.Exit(1)
	}
}

func run(bin, dir, addr, user string) error {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	password, err := loadOrCreatePassword(filepath.Join(dir, "password"))
	if err != nil {
		return err
	}
	cfg, err := registrytest.WriteServerConfig(dir, addr, user, password)
	if err != nil {
		return err
	}
	dockerConfig := filepath.Join(dir, "docker-config.json")
	body := fmt.Sprintf(`{"auths": {%q: {"username": %q, "password": %q}}}`+"\n", addr, user, password)
	if err := os.WriteFile(dockerConfig, []byte(body), 0o600); err != nil {
		return err
	}
	fmt.Printf(`registry on http://%[1]s, user %[2]s, password in %[3]s
  push:   docker login %[1]s -u %[2]s --password-stdin < %[3]s
          docker tag IMAGE %[1]s/NAME:TAG && docker push %[1]s/NAME:TAG
  pull:   put "docker-config": "%[4]s" in the executor's policy file
          (copy it somewhere root-owned, mode 0600, outside any sandbox, for real use)
`, addr, user, filepath.Join(dir, "password"), dockerConfig)
	// Exec, so that Ctrl-C and make's signals reach the registry itself.
	return syscall.Exec(bin, []string{bin, "serve", cfg}, os.Environ())
}

func loadOrCreatePassword(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return strings.TrimSpace(string(b)), nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return "", err
	}
	raw := make([]byte, 16)
	if _, err := rand.Read(raw); err != nil {
		return "", err
	}
	pw := hex.EncodeToString(raw)
	return pw, os.WriteFile(path, []byte(pw+"\n"), 0o600)
}
