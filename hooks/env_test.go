package hooks

import (
	"slices"
	"testing"
)

func TestEnviron(t *testing.T) {
	e := Env{
		TaskID: "t1", ContainerID: "c1", ContainerPID: 42,
		NetNS: "/proc/42/ns/net", RootFS: "/proc/42/root", Image: "img:1",
		Labels: map[string]string{
			"network.cni": "vlan10",
			"my-app.tier": "web",
			"my_app.tier": "shadowed", // maps to the same name; "my-app.tier" sorts first
			"a=b":         "x",        // "=" must not forge a name
			"bad":         "nul\x00byte",
		},
		CNIResult: []byte(`[{"ips":[]}]`),
	}
	want := []string{
		"MDX_CNI_RESULT=[{\"ips\":[]}]",
		"MDX_CONTAINER_ID=c1",
		"MDX_CONTAINER_PID=42",
		"MDX_IMAGE=img:1",
		"MDX_LABEL_A_B=x",
		"MDX_LABEL_MY_APP_TIER=web",
		"MDX_LABEL_NETWORK_CNI=vlan10",
		"MDX_NETNS=/proc/42/ns/net",
		"MDX_ROOTFS=/proc/42/root",
		"MDX_TASK_ID=t1",
		"PATH=" + hookPath,
	}
	if got := e.Environ(); !slices.Equal(got, want) {
		t.Errorf("Environ:\n got %q\nwant %q", got, want)
	}
	// Without CNI results the variable is absent, not empty.
	e.CNIResult = nil
	for _, kv := range e.Environ() {
		if len(kv) >= 14 && kv[:14] == "MDX_CNI_RESULT" {
			t.Errorf("MDX_CNI_RESULT present without results: %q", kv)
		}
	}
}
