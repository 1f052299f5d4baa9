package status

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"
	"unicode"
)

const (
	// EnvSocket names the environment variable that overrides the socket
	// path, for the executor and `executor status` alike.
	EnvSocket = "EXECUTOR_STATUS_SOCKET"
	// SocketName is the socket's file name in $MESOS_SANDBOX by default.
	SocketName = "executor.sock"

	// cliTimeout bounds one `executor status` call, which makes a single
	// request that a healthy executor answers in milliseconds.
	cliTimeout = 10 * time.Second
	// maxResponseBytes guards the CLI against a runaway response.
	maxResponseBytes = 64 << 20
)

// DefaultSocketPath returns the status socket path when no flag gives one:
// $EXECUTOR_STATUS_SOCKET, else $MESOS_SANDBOX/executor.sock, else "" (the
// caller must then ask for a path). env is typically os.Getenv.
func DefaultSocketPath(env func(string) string) string {
	if p := env(EnvSocket); p != "" {
		return p
	}
	if sb := env("MESOS_SANDBOX"); sb != "" {
		return filepath.Join(sb, SocketName)
	}
	return ""
}

// RunCLI implements `executor status [--socket PATH] [--json] [TASK_ID]`;
// args are the arguments after "status". Flags may come before or after
// TASK_ID. Without --json it prints a summary and a task table, or with
// TASK_ID that task's fields and history; with --json it prints the server's
// JSON, indented. It writes to out and returns an error that names the
// problem: no socket, a stale socket, an unknown task, a bad response. A nil
// env means os.Getenv.
func RunCLI(ctx context.Context, args []string, env func(string) string, out io.Writer) error {
	return runCLI(ctx, args, env, out, time.Now)
}

func runCLI(ctx context.Context, args []string, env func(string) string, out io.Writer, now func() time.Time) error {
	if env == nil {
		env = os.Getenv
	}
	fset := flag.NewFlagSet("status", flag.ContinueOnError)
	fset.SetOutput(io.Discard) // errors are returned, usage printed on -h only
	socket := fset.String("socket", "", "status socket `PATH` (default $"+EnvSocket+", else $MESOS_SANDBOX/"+SocketName+")")
	asJSON := fset.Bool("json", false, "print the raw JSON")
	usage := func() {
		fmt.Fprintln(out, "usage: executor status [--socket PATH] [--json] [TASK_ID]")
		fset.SetOutput(out)
		fset.PrintDefaults()
	}

	positional, err := parseInterleaved(fset, args)
	if errors.Is(err, flag.ErrHelp) {
		usage()
		return nil
	}
	if err != nil {
		return fmt.Errorf("executor status: %w", err)
	}
	if len(positional) > 1 {
		return fmt.Errorf("executor status: want at most one TASK_ID, got %d arguments (%q)", len(positional), positional)
	}

	path := *socket
	if path == "" {
		path = DefaultSocketPath(env)
	}
	if path == "" {
		return fmt.Errorf("executor status: no socket path: pass --socket PATH, or set %s or MESOS_SANDBOX", EnvSocket)
	}

	page := "/state"
	if len(positional) == 1 {
		page = "/tasks/" + url.PathEscape(positional[0])
	}
	ctx, cancel := context.WithTimeout(ctx, cliTimeout)
	defer cancel()
	body, err := fetch(ctx, path, page)
	if err != nil {
		return err
	}

	if *asJSON {
		var buf bytes.Buffer
		if err := json.Indent(&buf, body, "", "  "); err != nil {
			return fmt.Errorf("bad response from executor status socket at %s: %w", path, err)
		}
		buf.WriteByte('\n')
		_, err := out.Write(buf.Bytes())
		return err
	}

	t := now()
	if len(positional) == 1 {
		var task Task
		if err := json.Unmarshal(body, &task); err != nil {
			return fmt.Errorf("bad response from executor status socket at %s: %w", path, err)
		}
		return printTask(out, task, t)
	}
	var st State
	if err := json.Unmarshal(body, &st); err != nil {
		return fmt.Errorf("bad response from executor status socket at %s: %w", path, err)
	}
	return printState(out, st, t)
}

// parseInterleaved parses flags that may come before or after positional
// arguments (the flag package stops at the first positional). Everything
// after "--" is positional.
func parseInterleaved(fset *flag.FlagSet, args []string) ([]string, error) {
	var positional []string
	for {
		if err := fset.Parse(args); err != nil {
			return nil, err
		}
		rest := fset.Args()
		if len(rest) == 0 {
			return positional, nil
		}
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(positional, rest...), nil
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
}

// fetch GETs page from the socket and returns the body of a 200 response.
// Its errors say what the operator should check.
func fetch(ctx context.Context, path, page string) ([]byte, error) {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no executor status socket at %s: is the executor running?", path)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://executor"+page, nil)
	if err != nil {
		return nil, fmt.Errorf("executor status: %w", err)
	}
	client := NewHTTPClient(path)
	defer client.CloseIdleConnections()
	resp, err := client.Do(req)
	switch {
	case err == nil:
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Errorf("no executor status socket at %s: is the executor running?", path)
	case errors.Is(err, syscall.ECONNREFUSED):
		return nil, fmt.Errorf("executor status socket at %s refused the connection: the executor that created it is not running (stale socket): %w", path, err)
	case errors.Is(err, fs.ErrPermission):
		return nil, fmt.Errorf("cannot connect to executor status socket at %s (it is mode 0600: run as the executor's user or root): %w", path, err)
	default:
		return nil, fmt.Errorf("query executor status socket at %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return nil, fmt.Errorf("read response from executor status socket at %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		var eb errorBody
		if json.Unmarshal(body, &eb) == nil && eb.Error != "" {
			return nil, fmt.Errorf("executor status: %s (HTTP %d)", eb.Error, resp.StatusCode)
		}
		return nil, fmt.Errorf("bad response from executor status socket at %s: HTTP %s", path, resp.Status)
	}
	if !json.Valid(body) {
		return nil, fmt.Errorf("bad response from executor status socket at %s: body is not JSON", path)
	}
	return body, nil
}

func printState(out io.Writer, st State, now time.Time) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	kv := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, clean(v)) }
	kv("Executor", st.ExecutorID)
	kv("Framework", st.FrameworkID)
	if st.AgentID != "" {
		kv("Agent", st.AgentID)
	}
	kv("Agent connected", yesNo(st.AgentConnected))
	if st.PID != 0 || !st.StartedAt.IsZero() {
		v := "pid " + strconv.Itoa(st.PID)
		if !st.StartedAt.IsZero() {
			v += ", up " + humanDuration(now.Sub(st.StartedAt))
		}
		kv("Process", v)
	}
	kv("Unacknowledged updates", strconv.Itoa(st.UnacknowledgedUpdates))
	kv("Docker storage driver", orDash(st.Docker.StorageDriver))
	if st.Docker.APIVersion != "" || st.Docker.CgroupVersion != "" {
		kv("Docker API / cgroup", orDash(st.Docker.APIVersion)+" / "+orDash(st.Docker.CgroupVersion))
	}
	kv("Cgroups", orDash(st.Cgroups))
	if p := st.Policy; p != nil {
		kv("Policy file", orDash(p.File)+" ("+orDash(p.FileStatus)+")")
		for _, s := range p.Settings {
			kv("  "+s.Name, orDash(s.Value)+" ("+s.Source+")")
		}
	}
	if iso := st.Isolation; iso != nil {
		v := iso.Mode
		if iso.CgroupParent != "" {
			v += ", parent " + iso.CgroupParent
		}
		if iso.Reason != "" {
			v += " (" + iso.Reason + ")"
		}
		kv("Isolation", v)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if st.Isolation != nil {
		for _, w := range st.Isolation.Warnings {
			fmt.Fprintf(out, "Isolation warning: %s\n", clean(w))
		}
	}
	for _, w := range st.Docker.Warnings {
		fmt.Fprintf(out, "Docker warning: %s\n", clean(w))
	}
	for _, u := range st.Unacknowledged {
		fmt.Fprintf(out, "  unacknowledged: task %s %s uuid %s (%s old)\n", clean(u.TaskID),
			shortState(u.State), clean(u.UUID), humanDuration(time.Duration(u.AgeSeconds*float64(time.Second))))
	}

	for _, p := range st.Pulls {
		fmt.Fprintf(out, "Pulling %s: %s of %s, %s, for %s\n", clean(p.Image), humanBytes(p.BytesDone),
			humanBytes(p.BytesTotal), humanDuration(time.Duration(p.ElapsedSeconds*float64(time.Second))),
			clean(strings.Join(p.TaskIDs, ", ")))
	}

	fmt.Fprintln(out)
	if len(st.Tasks) == 0 {
		_, err := fmt.Fprintln(out, "No tasks.")
		return err
	}
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	// The NETWORKS column appears only when some task has CNI networks.
	withNets := slices.ContainsFunc(st.Tasks, func(t Task) bool { return len(t.Networks) > 0 })
	header := "TASK ID\tSTATE\tHEALTHY\tCONTAINER\tIP\tEXIT\tAGE/DURATION"
	if withNets {
		header += "\tNETWORKS"
	}
	fmt.Fprintln(tw, header)
	for _, t := range st.Tasks {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s",
			orDash(t.TaskID), orDash(shortState(t.State)), healthy(t.Healthy),
			orDash(shortID(t.ContainerID)), orDash(t.IP), exitCode(t.ExitCode), ageOrDuration(t, now))
		if withNets {
			fmt.Fprintf(tw, "\t%s", orDash(networks(t.Networks)))
		}
		fmt.Fprintln(tw)
	}
	return tw.Flush()
}

func printTask(out io.Writer, t Task, now time.Time) error {
	tw := tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	kv := func(k, v string) { fmt.Fprintf(tw, "%s:\t%s\n", k, orDash(v)) }
	kv("Task", t.TaskID)
	kv("State", t.State)
	kv("Healthy", healthy(t.Healthy))
	kv("Container", t.ContainerID)
	kv("Image", t.Image)
	kv("IP", t.IP)
	if len(t.Networks) > 0 {
		kv("Networks", networks(t.Networks))
	}
	if t.Launch != "" {
		kv("Launch step", t.Launch)
	}
	kv("Exit code", exitCode(t.ExitCode))
	kv("Reason", t.Reason)
	kv("Message", t.Message)
	kv("Started", timeAgo(t.StartedAt, now))
	kv("Finished", timeAgo(t.FinishedAt, now))
	kv("Age/duration", ageOrDuration(t, now))
	if s := t.Stats; s != nil {
		kv("CPU", fmt.Sprintf("user %.2fs, system %.2fs, throttled %d periods (%.2fs)",
			s.CPUUserSeconds, s.CPUSystemSeconds, s.CPUThrottledPeriods, s.CPUThrottledSeconds))
		kv("Memory", fmt.Sprintf("%s now, %s peak, rss %s, cache %s, limit %s",
			bytesText(s.MemoryBytes), bytesText(s.MemoryPeakBytes), bytesText(s.MemoryRSSBytes), bytesText(s.MemoryCacheBytes), limitText(s.MemoryLimitBytes, bytesText)))
		kv("Pids", fmt.Sprintf("%d, limit %s", s.Pids, limitText(s.PidsLimit, func(v uint64) string { return strconv.FormatUint(v, 10) })))
		kv("OOM kills", strconv.FormatUint(s.OOMKills, 10))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(out)
	if len(t.History) == 0 {
		_, err := fmt.Fprintln(out, "No history.")
		return err
	}
	fmt.Fprintln(out, "History:")
	tw = tabwriter.NewWriter(out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tSTATE\tREASON\tMESSAGE")
	for _, h := range t.History {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", h.Time.Format(time.RFC3339),
			orDash(shortState(h.State)), orDash(h.Reason), orDash(h.Message))
	}
	return tw.Flush()
}

func bytesText(b uint64) string {
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func limitText(v uint64, f func(uint64) string) string {
	if v == 0 {
		return "none"
	}
	return f(v)
}

// clean makes a value safe for one table cell: task ids and messages come from
// frameworks and containers, and a tab, newline or terminal escape in them
// would break the table or the operator's terminal.
func clean(s string) string {
	return strings.TrimSpace(strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s))
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return clean(s)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func healthy(h *bool) string {
	if h == nil {
		return "-"
	}
	return yesNo(*h)
}

func exitCode(c *int) string {
	if c == nil {
		return "-"
	}
	return strconv.Itoa(*c)
}

// shortState drops the "TASK_" prefix that every Mesos state name carries.
func shortState(s string) string { return strings.TrimPrefix(s, "TASK_") }

// shortID shortens a container id the way the docker CLI does.
func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// ageOrDuration is how long a running task has run, or how long a finished
// one ran.
func ageOrDuration(t Task, now time.Time) string {
	switch {
	case t.StartedAt == nil:
		return "-"
	case t.FinishedAt != nil:
		return humanDuration(t.FinishedAt.Sub(*t.StartedAt))
	default:
		return humanDuration(now.Sub(*t.StartedAt))
	}
}

func timeAgo(t *time.Time, now time.Time) string {
	if t == nil {
		return ""
	}
	return t.Format(time.RFC3339) + " (" + humanDuration(now.Sub(*t)) + " ago)"
}

// humanDuration prints d with the two most significant units, like kubectl.
func humanDuration(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	d = d.Round(time.Second)
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm%ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh%dm", int(d.Hours()), int(d.Minutes())%60)
	default:
		return fmt.Sprintf("%dd%dh", int(d.Hours())/24, int(d.Hours())%24)
	}
}

// humanBytes prints n in binary units: "0 B", "512 B", "1.5 MiB".
func humanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return strconv.FormatInt(n, 10) + " B"
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// networks renders CNI attachments as "name=ip,ip name2=ip", cleaned of
// control characters.
func networks(nets []TaskNetwork) string {
	parts := make([]string, 0, len(nets))
	for _, n := range nets {
		ips := strings.Join(n.IPs, ",")
		if ips == "" {
			ips = "-"
		}
		parts = append(parts, clean(n.Name)+"="+clean(ips))
	}
	return strings.Join(parts, " ")
}
