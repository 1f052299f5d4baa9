package main

import (
	"strings"
	"testing"
)

func TestParseHostile(t *testing.T) {
	ok := [][]string{
		{"/task", "hostile-symlink", "/etc/x"},
		{"/task", "hostile-symlink", "/a", "/b"},
		{"/task", "hostile-fifo"},
		{"/task", "hostile-flood", "1048576", "/etc/x"},
		{"/task", "hostile-policy", "/p.json"},
	}
	for _, argv := range ok {
		if _, err := parseArgs(argv); err != nil {
			t.Errorf("parseArgs(%q): %v", argv, err)
		}
	}
	bad := map[string][]string{
		"want at least one TARGET":   {"/task", "hostile-symlink"},
		"not an absolute path":       {"/task", "hostile-symlink", "rel"},
		"want 0 argument":            {"/task", "hostile-fifo", "x"},
		"bad byte count":             {"/task", "hostile-flood", "-1", "/x"},
		"want BYTES TARGET":          {"/task", "hostile-flood"},
		"hostile-policy: \"p.json\"": {"/task", "hostile-policy", "p.json"},
	}
	for want, argv := range bad {
		_, err := parseArgs(argv)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("parseArgs(%q) = %v, want an error containing %q", argv, err, want)
		}
	}
}
