package sandbox

import (
	"errors"
	"testing"
)

func TestTaskDir(t *testing.T) {
	t.Parallel()
	tests := []struct {
		root, id string
		want     string
		wantErr  bool
	}{
		{"/sb", "web-1", "/sb/tasks/web-1", false},
		{"/sb/", "web.1_a:b@c", "/sb/tasks/web.1_a:b@c", false},
		{"/sb", "...", "/sb/tasks/...", false},
		{"/sb", "a b", "/sb/tasks/a b", false},
		{"/sb", "", "", true},
		{"/sb", ".", "", true},
		{"/sb", "..", "", true},
		{"/sb", "a/b", "", true},
		{"/sb", "../etc", "", true},
		{"/sb", "/abs", "", true},
		{"/sb", "a\x00b", "", true},
		{"", "web-1", "", true},
	}
	for _, tt := range tests {
		got, err := TaskDir(tt.root, tt.id)
		if tt.wantErr {
			if err == nil {
				t.Errorf("TaskDir(%q, %q) = %q, want an error", tt.root, tt.id, got)
			} else if tt.root != "" && !errors.Is(err, ErrInvalidTaskID) {
				t.Errorf("TaskDir(%q, %q) error = %v, want ErrInvalidTaskID", tt.root, tt.id, err)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("TaskDir(%q, %q) = %q, %v; want %q", tt.root, tt.id, got, err, tt.want)
		}
	}
}
