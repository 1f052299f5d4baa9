package containerd

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"syscall"

	"github.com/distribution/reference"
	"github.com/docker/docker/api/types/registry"
)

// maxDockerConfigSize bounds the operator's config.json. A real one is a few
// KiB; the bound keeps a wrong path (a log file, a device) from costing
// memory.
const maxDockerConfigSize = 1 << 20

// ErrUnsafeDockerConfig marks a Docker config file the executor refuses to
// read credentials from: not a regular file, a symlink, not owned by root
// (or the executor's user), writable by group or others, or too large.
var ErrUnsafeDockerConfig = errors.New("unsafe docker config file")

// dockerConfigFile is the part of a Docker CLI config.json that holds
// registry credentials. Entries are Docker's own AuthConfig: "auth"
// (base64 of user:password), "username"/"password", "identitytoken",
// "registrytoken".
type dockerConfigFile struct {
	Auths       map[string]registry.AuthConfig `json:"auths"`
	CredsStore  string                         `json:"credsStore"`
	CredHelpers map[string]string              `json:"credHelpers"`
}

// registryAuth returns the X-Registry-Auth value for pulling ref, from the
// Docker config file at path, read now so that rotated credentials are
// picked up by the next pull. "" means pull anonymously: no path is
// configured or the file has no entry for the image's registry.
//
// Only the entry of the image's own registry host is ever selected, so a
// task naming an image cannot obtain another registry's credentials. No
// error returned here contains a credential: errors name the file, the host
// and what is wrong, never a value from the file.
func registryAuth(path string, ref reference.Named) (string, error) {
	if path == "" {
		return "", nil
	}
	data, err := readOperatorFile(path)
	if err != nil {
		return "", err
	}
	var cfg dockerConfigFile
	if err := json.Unmarshal(data, &cfg); err != nil {
		// encoding/json's messages name a character offset or a field
		// and type, never the value.
		return "", fmt.Errorf("docker config %s: %w", path, jsonErrorWithoutInput(err))
	}
	host := reference.Domain(ref)
	// Sorted, so that two keys for one registry ("docker.io" and
	// "https://index.docker.io/v1/") pick the same entry every time.
	for _, key := range slices.Sorted(maps.Keys(cfg.Auths)) {
		if registryHost(key) != host {
			continue
		}
		auth, err := completeAuth(cfg.Auths[key])
		if err != nil {
			return "", fmt.Errorf("docker config %s, registry %s: %w", path, host, err)
		}
		auth.ServerAddress = key
		encoded, err := registry.EncodeAuthConfig(auth)
		if err != nil {
			return "", fmt.Errorf("docker config %s, registry %s: encode credentials: %w", path, host, err)
		}
		return encoded, nil
	}
	for key, helper := range cfg.CredHelpers {
		if registryHost(key) == host {
			return "", fmt.Errorf("docker config %s: registry %s uses credential helper %q, which this executor does not run; put the credentials under \"auths\"", path, host, helper)
		}
	}
	return "", nil
}

// completeAuth turns an auths entry into the AuthConfig Docker's pull wants:
// "auth" is split into username and password (the daemon ignores "auth").
func completeAuth(a registry.AuthConfig) (registry.AuthConfig, error) {
	if a.Auth != "" {
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(a.Auth))
		if err != nil {
			// The decoder's error names an offset only.
			return registry.AuthConfig{}, errors.New(`"auth" is not valid base64`)
		}
		user, pass, ok := strings.Cut(string(raw), ":")
		if !ok || user == "" {
			return registry.AuthConfig{}, errors.New(`"auth" does not decode to user:password`)
		}
		a.Username, a.Password, a.Auth = user, pass, ""
	}
	if a.Username == "" && a.IdentityToken == "" && a.RegistryToken == "" {
		return registry.AuthConfig{}, errors.New("entry has no auth, username, identitytoken or registrytoken")
	}
	a.Email = "" //nolint:staticcheck // deprecated; never sent
	return a, nil
}

// registryHost normalises a config.json "auths" key ("https://index.docker.io/v1/",
// "registry.example.com:5000", "http://host/v2/") to the registry domain
// reference.Domain gives for an image on that registry.
func registryHost(key string) string {
	h := strings.ToLower(strings.TrimSpace(key))
	h = strings.TrimPrefix(h, "https://")
	h = strings.TrimPrefix(h, "http://")
	h, _, _ = strings.Cut(h, "/")
	switch h {
	case "docker.io", "index.docker.io", "registry-1.docker.io":
		return "docker.io"
	}
	return h
}

// readOperatorFile reads a small file that only the operator may write. The
// last path component is opened without following a symlink, and the checks
// are made on the opened file, so a file swapped in between cannot slip past.
func readOperatorFile(path string) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO planted at the path must not block the
	// pull forever.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("docker config %s is a symlink: %w", path, ErrUnsafeDockerConfig)
		}
		return nil, fmt.Errorf("docker config: %w", err)
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("docker config: %w", err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("docker config %s is not a regular file (%s): %w", path, fi.Mode().Type(), ErrUnsafeDockerConfig)
	}
	if fi.Mode().Perm()&0o022 != 0 {
		return nil, fmt.Errorf("docker config %s is writable by group or others (mode %#o): %w", path, fi.Mode().Perm(), ErrUnsafeDockerConfig)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("docker config %s is owned by uid %d, not root: %w", path, st.Uid, ErrUnsafeDockerConfig)
	}
	if fi.Size() > maxDockerConfigSize {
		return nil, fmt.Errorf("docker config %s is %d bytes, more than %d: %w", path, fi.Size(), maxDockerConfigSize, ErrUnsafeDockerConfig)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxDockerConfigSize+1))
	if err != nil {
		return nil, fmt.Errorf("docker config: %w", err)
	}
	if len(data) > maxDockerConfigSize {
		return nil, fmt.Errorf("docker config %s grew past %d bytes: %w", path, maxDockerConfigSize, ErrUnsafeDockerConfig)
	}
	return data, nil
}

// jsonErrorWithoutInput keeps a JSON error's position but drops anything
// that could quote the input: a SyntaxError quotes one character, which in
// a file of secrets is one character too many.
func jsonErrorWithoutInput(err error) error {
	var syn *json.SyntaxError
	if errors.As(err, &syn) {
		return fmt.Errorf("invalid JSON at byte offset %d", syn.Offset)
	}
	var typ *json.UnmarshalTypeError
	if errors.As(err, &typ) {
		return fmt.Errorf("field %s: want %s, found a JSON %s", typ.Field, typ.Type, typ.Value)
	}
	return errors.New("invalid JSON")
}
