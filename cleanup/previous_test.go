package cleanup

import (
	"context"
	"errors"
	"io"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/containerd"
)

type fakeDocker struct {
	list      []containerd.Summary
	listLabel map[string]string
	removed   []string
	failOn    string
}

func (f *fakeDocker) List(_ context.Context, labels map[string]string, _ bool) ([]containerd.Summary, error) {
	f.listLabel = labels
	return f.list, nil
}

func (f *fakeDocker) Remove(_ context.Context, id string) error {
	if id == f.failOn {
		return errors.New("device or resource busy")
	}
	f.removed = append(f.removed, id)
	return nil
}

func quietLog() *logrus.Entry {
	l := logrus.New()
	l.SetOutput(io.Discard)
	return logrus.NewEntry(l)
}

func TestRemovePreviousInstances(t *testing.T) {
	old := map[string]string{containerd.LabelInstance: "old", containerd.LabelTask: "t1"}
	mine := map[string]string{containerd.LabelInstance: "me", containerd.LabelTask: "t2"}
	f := &fakeDocker{list: []containerd.Summary{
		{ID: "a", Labels: old, Created: time.Now().Add(-time.Hour)},
		{ID: "b", Labels: mine},
		{ID: "c", Labels: map[string]string{containerd.LabelInstance: "older"}},
		{ID: "d", Labels: old, State: "exited"},
	}, failOn: "d"}
	n, err := RemovePreviousInstances(context.Background(), f, "fw", "ex", "me", quietLog())
	if n != 2 {
		t.Errorf("RemovePreviousInstances removed %d; want 2", n)
	}
	if err == nil {
		t.Error("RemovePreviousInstances error = nil; want the failure removing d")
	}
	for _, id := range f.removed {
		if id == "b" {
			t.Error("removed a container of the current instance")
		}
	}
	if got := f.listLabel[containerd.LabelFramework]; got != "fw" {
		t.Errorf("list filter framework = %q; want fw", got)
	}
	if got := f.listLabel[containerd.LabelExecutor]; got != "ex" {
		t.Errorf("list filter executor = %q; want ex", got)
	}
}
