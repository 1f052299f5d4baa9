package main

import (
	"bytes"
	"reflect"
	"strings"
	"testing"
)

func TestParseArgs(t *testing.T) {
	tests := []struct {
		name    string
		argv    []string
		want    []step
		wantErr string
	}{
		{
			name: "plain",
			argv: []string{"/task", "sleep", "1h"},
			want: []step{{name: "sleep", args: []string{"1h"}}},
		},
		{
			name: "shell form splits on whitespace",
			argv: []string{"/bin/sh", "-c", "  exit   3 "},
			want: []step{{name: "exit", args: []string{"3"}}},
		},
		{
			name: "chain",
			argv: []string{"/task", "echo", "hello", "world", "--", "stderr", "oops", "--", "exit", "3"},
			want: []step{
				{name: "echo", args: []string{"hello", "world"}},
				{name: "stderr", args: []string{"oops"}},
				{name: "exit", args: []string{"3"}},
			},
		},
		{
			name: "chain in shell form",
			argv: []string{"sh", "-c", "echo hi -- exit 0"},
			want: []step{{name: "echo", args: []string{"hi"}}, {name: "exit", args: []string{"0"}}},
		},
		{
			name: "echo without args",
			argv: []string{"/task", "echo"},
			want: []step{{name: "echo", args: []string{}}},
		},
		{
			name: "sleep in whole seconds",
			argv: []string{"/task", "sleep", "30"},
			want: []step{{name: "sleep", args: []string{"30"}}},
		},
		{name: "no command", argv: []string{"/task"}, wantErr: "usage"},
		{name: "sh without -c string", argv: []string{"/bin/sh", "-c"}, wantErr: "missing command string"},
		{name: "unknown", argv: []string{"/task", "dance"}, wantErr: `unknown command "dance"`},
		{name: "sh as plain command", argv: []string{"/bin/sh", "exit", "1"}, want: []step{{name: "exit", args: []string{"1"}}}},
		{name: "bad duration", argv: []string{"/task", "sleep", "soon"}, wantErr: `bad duration "soon"`},
		{name: "missing arg", argv: []string{"/task", "exit"}, wantErr: "want 1 argument"},
		{name: "extra arg", argv: []string{"/task", "env", "x"}, wantErr: "want 0 argument"},
		{name: "exit out of range", argv: []string{"/task", "exit", "300"}, wantErr: "bad status"},
		{name: "bad flood count", argv: []string{"/task", "flood", "-1"}, wantErr: "bad byte count"},
		{name: "bad port", argv: []string{"/task", "serve", "0"}, wantErr: "bad port"},
		{name: "serve-local", argv: []string{"/task", "serve-local", "8080"}, want: []step{{name: "serve-local", args: []string{"8080"}}}},
		{name: "serve-local bad port", argv: []string{"/task", "serve-local", "65536"}, wantErr: "bad port"},
		{name: "empty step", argv: []string{"/task", "echo", "a", "--", "--", "exit", "1"}, wantErr: "empty step"},
		{name: "trailing separator", argv: []string{"/task", "echo", "a", "--"}, wantErr: "empty step"},
		{name: "bad step later in chain", argv: []string{"/task", "echo", "a", "--", "nope"}, wantErr: "unknown command"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseArgs(tt.argv)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("parseArgs(%q) error = %v, want one containing %q", tt.argv, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("parseArgs(%q) error = %v", tt.argv, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("parseArgs(%q) = %+v, want %+v", tt.argv, got, tt.want)
			}
		})
	}
}

func TestRun(t *testing.T) {
	tests := []struct {
		argv       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{argv: []string{"/task", "echo", "hello", "--", "exit", "3"}, wantCode: 3, wantStdout: "hello\n"},
		{argv: []string{"sh", "-c", "stderr oops -- echo a b"}, wantStdout: "a b\n", wantStderr: "oops\n"},
		{argv: []string{"/task", "exit", "4", "--", "echo", "never"}, wantCode: 4},
		{argv: []string{"/task", "sleep", "1ms", "--", "spin", "1ms"}},
		{argv: []string{"/task", "burn", "10ms", "--", "echo", "burnt"}, wantStdout: "burnt\n"},
		{argv: []string{"/task", "alloc", "2", "--", "echo", "ok"}, wantStdout: "allocated 2 MiB\nok\n"},
		{argv: []string{"/task", "flood", "5"}, wantStdout: "xxxx\n"},
		{argv: []string{"/task", "flood", "0"}},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.argv, " "), func(t *testing.T) {
			steps, err := parseArgs(tt.argv)
			if err != nil {
				t.Fatal(err)
			}
			var stdout, stderr bytes.Buffer
			p := &prog{stdout: &stdout, stderr: &stderr}
			if code := p.run(steps); code != tt.wantCode {
				t.Errorf("exit status = %d, want %d", code, tt.wantCode)
			}
			if stdout.String() != tt.wantStdout {
				t.Errorf("stdout = %q, want %q", stdout.String(), tt.wantStdout)
			}
			if stderr.String() != tt.wantStderr {
				t.Errorf("stderr = %q, want %q", stderr.String(), tt.wantStderr)
			}
		})
	}
}

func TestEnvSorted(t *testing.T) {
	t.Setenv("ZZZ_TASKBIN", "1")
	t.Setenv("AAA_TASKBIN", "2")
	var stdout bytes.Buffer
	p := &prog{stdout: &stdout, stderr: &stdout}
	p.run([]step{{name: "env"}})
	out := stdout.String()
	a, z := strings.Index(out, "AAA_TASKBIN=2\n"), strings.Index(out, "ZZZ_TASKBIN=1\n")
	if a < 0 || z < 0 || a > z {
		t.Errorf("env output not sorted or incomplete:\n%s", out)
	}
}

func TestFloodWritesExactly(t *testing.T) {
	for _, n := range []int64{1, 1023, 1024, 1025, 10 << 10, 3*1024 + 17} {
		var out bytes.Buffer
		if err := flood(&out, n); err != nil {
			t.Fatal(err)
		}
		if int64(out.Len()) != n {
			t.Errorf("flood(%d) wrote %d bytes", n, out.Len())
		}
		if n >= 1024 && !bytes.HasPrefix(out.Bytes(), floodLine) {
			t.Errorf("flood(%d) does not start with a whole line", n)
		}
		if !bytes.HasSuffix(out.Bytes(), []byte("\n")) {
			t.Errorf("flood(%d) does not end with a newline", n)
		}
	}
}
