package gate

import (
	"errors"
	"slices"
	"testing"

	"github.com/mdx-executor/mdx/containerd"
)

func TestRealArgv(t *testing.T) {
	img := containerd.ImageConfig{Entrypoint: []string{"/ep", "-x"}, Cmd: []string{"run", "fast"}}
	tests := []struct {
		name       string
		entrypoint []string
		cmd        []string
		img        containerd.ImageConfig
		want       []string
		wantErr    error
	}{
		{name: "image only", img: img, want: []string{"/ep", "-x", "run", "fast"}},
		{name: "cmd override keeps image entrypoint", cmd: []string{"walk"}, img: img, want: []string{"/ep", "-x", "walk"}},
		{name: "entrypoint override drops image cmd", entrypoint: []string{"/other"}, img: img, want: []string{"/other"}},
		{name: "both overridden", entrypoint: []string{"/other"}, cmd: []string{"a", "b"}, img: img, want: []string{"/other", "a", "b"}},
		{name: "empty entrypoint clears image entrypoint, keeps image cmd", entrypoint: []string{}, img: img, want: []string{"run", "fast"}},
		{name: "empty entrypoint with cmd", entrypoint: []string{}, cmd: []string{"x"}, img: img, want: []string{"x"}},
		{name: "image cmd only", img: containerd.ImageConfig{Cmd: []string{"sh"}}, want: []string{"sh"}},
		{name: "nothing", wantErr: ErrNoCommand},
		{name: "empty entrypoint, image has only an entrypoint", entrypoint: []string{}, img: containerd.ImageConfig{Entrypoint: []string{"/ep"}}, wantErr: ErrNoCommand},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := &containerd.Spec{Entrypoint: tc.entrypoint, Cmd: tc.cmd}
			got, err := RealArgv(spec, tc.img)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("argv = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestWrap(t *testing.T) {
	m := newManager(t)
	g, err := m.Prepare("mdx-wrap")
	if err != nil {
		t.Fatal(err)
	}
	spec := &containerd.Spec{Cmd: []string{"echo", "hi"}, Mounts: []containerd.Mount{{HostPath: "/sb", ContainerPath: "/mnt/mesos/sandbox"}}}
	if err := g.Wrap(spec, containerd.ImageConfig{Entrypoint: []string{"/task"}, Cmd: []string{"sleep", "1h"}}); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(spec.Entrypoint, []string{BinaryPath}) || !slices.Equal(spec.Cmd, []string{"/task", "echo", "hi"}) {
		t.Errorf("entrypoint %q cmd %q", spec.Entrypoint, spec.Cmd)
	}
	want := []containerd.Mount{
		{HostPath: "/sb", ContainerPath: "/mnt/mesos/sandbox"},
		{HostPath: m.Binary(), ContainerPath: BinaryPath, ReadOnly: true},
		{HostPath: g.FIFOPath(), ContainerPath: ReleasePath, ReadOnly: true},
	}
	if !slices.Equal(spec.Mounts, want) {
		t.Errorf("mounts = %+v, want %+v", spec.Mounts, want)
	}
}
