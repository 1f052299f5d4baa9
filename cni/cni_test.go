package cni

import (
	"errors"
	"reflect"
	"testing"
)

func TestValidateArgs(t *testing.T) {
	for _, tc := range []struct {
		args map[string]string
		ok   bool
	}{
		{map[string]string{"IP": "10.99.1.5", "VLAN_TAG": "x"}, true},
		{map[string]string{"K": ""}, true},
		{map[string]string{"K": "a;IP=10.0.0.1"}, false}, // smuggles a second argument
		{map[string]string{"K": "a=b"}, false},
		{map[string]string{"K=V": "x"}, false},
		{map[string]string{"1K": "x"}, false},
		{map[string]string{"K": "nul\x00"}, false},
		{map[string]string{"a.b": "x"}, false},
	} {
		err := ValidateArgs(tc.args)
		if (err == nil) != tc.ok || (err != nil && !errors.Is(err, ErrBadArg)) {
			t.Errorf("ValidateArgs(%q) = %v, want ok=%v", tc.args, err, tc.ok)
		}
	}
}

func TestIfName(t *testing.T) {
	for _, tc := range []struct {
		net  string
		i    int
		want string
	}{{"none", 0, "eth0"}, {"none", 1, "eth1"}, {"bridge", 0, "eth1"}, {"", 0, "eth1"}, {"mynet", 2, "eth3"}} {
		if got := IfName(tc.net, tc.i); got != tc.want {
			t.Errorf("IfName(%q, %d) = %q, want %q", tc.net, tc.i, got, tc.want)
		}
	}
}

func TestRuntimeConf(t *testing.T) {
	c := &Client{}
	rt := c.runtimeConf(Attachment{ContainerID: "c", NetNS: "/proc/1/ns/net", IfName: "eth0",
		Args:         map[string]string{"B": "2", "A": "1"},
		PortMappings: []PortMapping{{HostPort: 31000, ContainerPort: 80, Protocol: "tcp"}}})
	if want := [][2]string{{"IgnoreUnknown", "1"}, {"A", "1"}, {"B", "2"}}; !reflect.DeepEqual(rt.Args, want) {
		t.Errorf("Args = %q, want %q", rt.Args, want)
	}
	if pm, ok := rt.CapabilityArgs["portMappings"].([]PortMapping); !ok || len(pm) != 1 || pm[0].HostPort != 31000 {
		t.Errorf("CapabilityArgs = %#v", rt.CapabilityArgs)
	}
	rt = c.runtimeConf(Attachment{ContainerID: "c"})
	if rt.Args != nil || rt.CapabilityArgs != nil {
		t.Errorf("empty attachment got Args %q caps %v", rt.Args, rt.CapabilityArgs)
	}
}

func TestPluginEnv(t *testing.T) {
	got := pluginEnv([]string{"HOME=/root", "MESOS_EXECUTOR_AUTHENTICATION_TOKEN=x", "CNI_COMMAND=ADD", "CNI_IFNAME=eth0", "PATH=/evil"})
	want := []string{"PATH=" + pluginPath, "CNI_COMMAND=ADD", "CNI_IFNAME=eth0"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("pluginEnv = %q, want %q", got, want)
	}
}
