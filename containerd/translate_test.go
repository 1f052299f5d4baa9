package containerd

import (
	"archive/tar"
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/docker/docker/api/types/container"
	"github.com/docker/docker/api/types/mount"
	"github.com/docker/docker/api/types/network"
	"github.com/docker/go-connections/nat"
)

func TestDockerConfig(t *testing.T) {
	spec := Spec{
		Name:       "mdx-t",
		Image:      "img:1",
		Env:        []string{"A=1"},
		Labels:     map[string]string{LabelTask: "t"},
		Hostname:   "h",
		User:       "nobody",
		WorkingDir: "/w",
		Ports: []PortBinding{
			{ContainerPort: 80, HostPort: 31000},
			{ContainerPort: 53, HostPort: 31001, Protocol: "UDP"},
			{ContainerPort: 9000},
		},
		Mounts:            []Mount{{HostPath: "/sb", ContainerPath: SandboxMountPoint}, {HostPath: "/ro", ContainerPath: "/ro", ReadOnly: true}},
		Init:              true,
		CPUShares:         512,
		CPUQuota:          50000,
		CPUPeriod:         100000,
		MemoryBytes:       64 << 20,
		MemoryReservation: 32 << 20,
		PidsLimit:         4096,
		Privileged:        true,
		PidMode:           "host",
		IpcMode:           "host",
		UTSMode:           "host",
		CgroupParent:      "/mdx/ex",
	}
	cfg, hc, nc, err := dockerConfig(spec)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Entrypoint != nil || cfg.Cmd != nil {
		t.Errorf("Entrypoint=%v Cmd=%v, want nil to keep the image's", cfg.Entrypoint, cfg.Cmd)
	}
	if cfg.Image != "img:1" || cfg.Hostname != "h" || cfg.User != "nobody" || cfg.WorkingDir != "/w" ||
		!reflect.DeepEqual(cfg.Env, spec.Env) || cfg.Labels[LabelTask] != "t" {
		t.Errorf("config = %+v", cfg)
	}
	wantExposed := nat.PortSet{"80/tcp": {}, "53/udp": {}, "9000/tcp": {}}
	if !reflect.DeepEqual(cfg.ExposedPorts, wantExposed) {
		t.Errorf("ExposedPorts = %v, want %v", cfg.ExposedPorts, wantExposed)
	}
	wantBindings := nat.PortMap{
		"80/tcp":   {{HostPort: "31000"}},
		"53/udp":   {{HostPort: "31001"}},
		"9000/tcp": {{HostPort: ""}},
	}
	if !reflect.DeepEqual(hc.PortBindings, wantBindings) {
		t.Errorf("PortBindings = %v, want %v", hc.PortBindings, wantBindings)
	}
	if hc.NetworkMode != "bridge" || nc != nil {
		t.Errorf("NetworkMode=%q networking=%+v, want bridge without endpoints config", hc.NetworkMode, nc)
	}
	if hc.Init == nil || !*hc.Init {
		t.Errorf("Init = %v, want true", hc.Init)
	}
	wantMounts := []mount.Mount{
		{Type: mount.TypeBind, Source: "/sb", Target: SandboxMountPoint},
		{Type: mount.TypeBind, Source: "/ro", Target: "/ro", ReadOnly: true},
	}
	if !reflect.DeepEqual(hc.Mounts, wantMounts) {
		t.Errorf("Mounts = %+v, want %+v", hc.Mounts, wantMounts)
	}
	r := hc.Resources
	if r.CPUShares != 512 || r.CPUQuota != 50000 || r.CPUPeriod != 100000 || r.Memory != 64<<20 || r.CgroupParent != "/mdx/ex" ||
		r.MemoryReservation != 32<<20 || r.PidsLimit == nil || *r.PidsLimit != 4096 {
		t.Errorf("Resources = %+v", r)
	}
	if !hc.Privileged || hc.PidMode != "host" || hc.IpcMode != "host" || hc.UTSMode != "host" {
		t.Errorf("privileged/namespaces = %v %q %q %q", hc.Privileged, hc.PidMode, hc.IpcMode, hc.UTSMode)
	}
}

func TestDockerConfigCommand(t *testing.T) {
	cfg, hc, _, err := dockerConfig(Spec{Image: "i", Entrypoint: []string{"/bin/sh"}, Cmd: []string{"-c", "exit 3"}})
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual([]string(cfg.Entrypoint), []string{"/bin/sh"}) || !reflect.DeepEqual([]string(cfg.Cmd), []string{"-c", "exit 3"}) {
		t.Errorf("Entrypoint=%q Cmd=%q", cfg.Entrypoint, cfg.Cmd)
	}
	if hc.PidsLimit != nil || hc.CPUQuota != 0 || hc.MemoryReservation != 0 {
		t.Errorf("PidsLimit=%v CPUQuota=%d MemoryReservation=%d; want all unset for a spec without them", hc.PidsLimit, hc.CPUQuota, hc.MemoryReservation)
	}
	if hc.Init == nil || *hc.Init {
		t.Errorf("Init = %v, want an explicit false", hc.Init)
	}
	// An empty, non-nil Cmd clears the image's CMD.
	cfg, _, _, _ = dockerConfig(Spec{Image: "i", Cmd: []string{}})
	if cfg.Cmd == nil || len(cfg.Cmd) != 0 {
		t.Errorf("Cmd = %#v, want empty non-nil", cfg.Cmd)
	}
}

func TestDockerConfigNetworks(t *testing.T) {
	ports := []PortBinding{{ContainerPort: 80, HostPort: 31000}}
	tests := []struct {
		network       string
		wantMode      container.NetworkMode
		wantEndpoints bool
		wantBindings  bool
	}{
		{"", "bridge", false, true},
		{"bridge", "bridge", false, true},
		{"host", "host", false, false},
		{"none", "none", false, false},
		{"mynet", "mynet", true, true},
	}
	for _, tt := range tests {
		t.Run(tt.network, func(t *testing.T) {
			_, hc, nc, err := dockerConfig(Spec{Image: "i", Network: tt.network, Ports: ports})
			if err != nil {
				t.Fatal(err)
			}
			if hc.NetworkMode != tt.wantMode {
				t.Errorf("NetworkMode = %q, want %q", hc.NetworkMode, tt.wantMode)
			}
			gotEndpoints := nc != nil && nc.EndpointsConfig[tt.network] != nil
			if gotEndpoints != tt.wantEndpoints {
				t.Errorf("endpoints config = %+v, want one for %q: %v", nc, tt.network, tt.wantEndpoints)
			}
			if got := len(hc.PortBindings) > 0; got != tt.wantBindings {
				t.Errorf("PortBindings = %v, want bindings: %v", hc.PortBindings, tt.wantBindings)
			}
		})
	}
}

func TestDockerConfigInvalid(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want string
	}{
		{"no image", Spec{}, "no image"},
		{"bad protocol", Spec{Image: "i", Ports: []PortBinding{{ContainerPort: 1, Protocol: "icmp"}}}, "unknown protocol"},
		{"zero port", Spec{Image: "i", Ports: []PortBinding{{}}}, "out of range"},
		{"port too big", Spec{Image: "i", Ports: []PortBinding{{ContainerPort: 70000}}}, "out of range"},
		{"empty mount", Spec{Image: "i", Mounts: []Mount{{HostPath: "/a"}}}, "empty path"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, _, err := dockerConfig(tt.spec)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("dockerConfig error = %v, want one containing %q", err, tt.want)
			}
		})
	}
}

func TestInfoFrom(t *testing.T) {
	// Nil pointers everywhere must not panic.
	if got := infoFrom(container.InspectResponse{}); !reflect.DeepEqual(got, Info{}) {
		t.Errorf("infoFrom(empty) = %+v", got)
	}
	resp := container.InspectResponse{
		ContainerJSONBase: &container.ContainerJSONBase{
			ID:   "abc",
			Name: "/mdx-x",
			State: &container.State{
				Status: "exited", ExitCode: 137, OOMKilled: true, Error: "",
				StartedAt: "2026-01-02T03:04:05.123456789Z", FinishedAt: "0001-01-01T00:00:00Z",
			},
		},
		Config: &container.Config{StopSignal: "SIGINT", Labels: map[string]string{LabelTask: "t"}},
		NetworkSettings: &container.NetworkSettings{
			Networks: map[string]*network.EndpointSettings{
				"bridge": {IPAddress: "172.17.0.2"},
				"other":  {IPAddress: "10.0.0.2"},
				"empty":  nil,
			},
		},
	}
	resp.NetworkSettings.IPAddress = "172.17.0.2" //nolint:staticcheck // what older daemons fill
	got := infoFrom(resp)
	if got.ID != "abc" || got.Name != "mdx-x" || got.Status != "exited" || got.ExitCode != 137 || !got.OOMKilled ||
		got.StopSignal != "SIGINT" || got.Labels[LabelTask] != "t" {
		t.Errorf("infoFrom = %+v", got)
	}
	if !reflect.DeepEqual(got.IPs, []string{"10.0.0.2", "172.17.0.2"}) {
		t.Errorf("IPs = %v, want sorted and deduplicated", got.IPs)
	}
	if got.StartedAt.Nanosecond() != 123456789 || !got.FinishedAt.IsZero() {
		t.Errorf("StartedAt=%v FinishedAt=%v", got.StartedAt, got.FinishedAt)
	}
}

func TestBinaryLayer(t *testing.T) {
	dir := t.TempDir()
	bin := filepath.Join(dir, "bin")
	if err := os.WriteFile(bin, []byte("\x7fELF fake"), 0o600); err != nil {
		t.Fatal(err)
	}
	layer, err := binaryLayer(map[string]string{"/task": bin, "/bin/sh": bin})
	if err != nil {
		t.Fatal(err)
	}
	type entry struct {
		typ  byte
		mode int64
		data string
	}
	got := map[string]entry{}
	var order []string
	tr := tar.NewReader(bytes.NewReader(layer))
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		got[hdr.Name] = entry{hdr.Typeflag, hdr.Mode, string(data)}
		order = append(order, hdr.Name)
	}
	want := map[string]entry{
		"bin/":               {tar.TypeDir, 0o755, ""},
		"etc/":               {tar.TypeDir, 0o755, ""},
		"mnt/":               {tar.TypeDir, 0o755, ""},
		"mnt/mesos/":         {tar.TypeDir, 0o755, ""},
		"mnt/mesos/sandbox/": {tar.TypeDir, 0o755, ""},
		"tmp/":               {tar.TypeDir, 0o1777, ""},
		"etc/passwd":         {tar.TypeReg, 0o644, "root:x:0:0:root:/:/bin/sh\n"},
		"etc/group":          {tar.TypeReg, 0o644, "root:x:0:\n"},
		"task":               {tar.TypeReg, 0o755, "\x7fELF fake"},
		"bin/sh":             {tar.TypeReg, 0o755, "\x7fELF fake"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("layer entries = %+v\nwant %+v", got, want)
	}
	seen := map[string]bool{}
	for _, name := range order {
		if parent := filepath.Dir(strings.TrimSuffix(name, "/")); parent != "." && !seen[parent+"/"] {
			t.Errorf("%s comes before its directory %s/", name, parent)
		}
		seen[name] = true
	}

	if _, err := binaryLayer(map[string]string{"/../x": bin}); err == nil {
		t.Error("binaryLayer accepted a path outside the image")
	}
	if _, err := binaryLayer(map[string]string{"/x": filepath.Join(dir, "missing")}); err == nil {
		t.Error("binaryLayer accepted a missing host file")
	}
}

func TestDockerConfigLogCap(t *testing.T) {
	tests := []struct {
		name string
		log  LogConfig
		want container.LogConfig
	}{
		{"zero means bounded json-file", LogConfig{},
			container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "10m", "max-file": "2"}}},
		{"local driver", LogConfig{Driver: LogDriverLocal, MaxSize: "1g", MaxFile: 5},
			container.LogConfig{Type: "local", Config: map[string]string{"max-size": "1g", "max-file": "5"}}},
		{"only size set", LogConfig{MaxSize: "512k"},
			container.LogConfig{Type: "json-file", Config: map[string]string{"max-size": "512k", "max-file": "2"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, hc, _, err := dockerConfig(Spec{Image: "img", Log: tt.log})
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(hc.LogConfig, tt.want) {
				t.Errorf("LogConfig = %+v, want %+v", hc.LogConfig, tt.want)
			}
		})
	}
}

func TestLogConfigInvalid(t *testing.T) {
	for _, c := range []LogConfig{
		{Driver: "none"}, // unbounded by omission: the point is a cap
		{Driver: "syslog"},
		{MaxSize: "lots"},
		{MaxSize: "-1m"},
		{MaxSize: "100"}, // bytes: would rotate on every line
		{MaxFile: -1},
	} {
		if err := c.Validate(); err == nil {
			t.Errorf("Validate(%+v) = nil, want an error", c)
		}
		if _, _, _, err := dockerConfig(Spec{Image: "img", Log: c}); err == nil {
			t.Errorf("dockerConfig with Log %+v succeeded, want an error", c)
		}
	}
}

func TestLogConfigMaxBytes(t *testing.T) {
	n, err := LogConfig{}.MaxBytes()
	if err != nil || n != 2*10<<20 {
		t.Errorf("default MaxBytes() = %d, %v; want %d", n, err, 2*10<<20)
	}
	n, err = LogConfig{MaxSize: "1k", MaxFile: 3}.MaxBytes()
	if err != nil || n != 3<<10 {
		t.Errorf("MaxBytes(1k x 3) = %d, %v; want %d", n, err, 3<<10)
	}
}
