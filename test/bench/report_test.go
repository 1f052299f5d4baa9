package bench

import (
	"fmt"
	"io"
	"math"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Targets of issue 3, tightened by issue 11.
const (
	targetLaunchRatio = 1.10
	targetBurstRatio  = 1.15
	targetExitP99     = 45 * time.Millisecond // issue 11 item 9 (was 50)
	targetRSSPerTask  = 56                    // KB, issue 11 item 9 (was 64)
	targetStateP99    = 5 * time.Millisecond
)

// results collects what the sub-benchmarks measured, for the final table.
// A zero part was not run (filtered out with -bench, or failed).
type results struct {
	env string // engine, host and load

	launch struct {
		exec, raw []time.Duration
	}
	burst struct {
		n         int
		exec, raw time.Duration
		execLat   []time.Duration // per task: LAUNCH -> RUNNING
		rawLat    []time.Duration // per container: create+start
	}
	exit struct {
		exec   []time.Duration // FinishedAt -> terminal update at the agent
		docker []time.Duration // FinishedAt -> die event at a raw client
		// FinishedAt -> the raw client's inspect after the die event
		inspect []time.Duration
		// die event at a raw client -> terminal update at the agent, per
		// task: the executor's own share of (c)
		own []time.Duration
	}
	rss struct {
		idle, low, high resources
		nLow, nHigh     int
	}
	state struct {
		tasks int
		bytes int
		lat   []time.Duration
	}
}

// percentile returns the nearest-rank p-th percentile (0 < p <= 100) of ds.
// With 30 samples p99 is the maximum.
func percentile(ds []time.Duration, p float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(math.Ceil(p/100*float64(len(s)))) - 1
	return s[max(0, min(i, len(s)-1))]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func fmtMS(d time.Duration) string {
	switch {
	case d == 0:
		return "-"
	case d < 10*time.Millisecond:
		return fmt.Sprintf("%.2f ms", ms(d))
	case d < 10*time.Second:
		return fmt.Sprintf("%.1f ms", ms(d))
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func ratio(a, b time.Duration) float64 {
	if b == 0 {
		return 0
	}
	return float64(a) / float64(b)
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

// loadavg returns the first field of /proc/loadavg, or "?".
func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return "?"
	}
	return f[0]
}

// write prints the table (Markdown, so that it can go into the README as is).
func (r *results) write(w io.Writer) {
	type row struct{ what, exec, raw, ratio, target, met string }
	var rows []row
	add := func(what, exec, raw, ratio, target, met string) {
		rows = append(rows, row{what, exec, raw, ratio, target, met})
	}

	if l := r.launch; len(l.exec) > 0 && len(l.raw) > 0 {
		n := len(l.exec)
		em, rm := percentile(l.exec, 50), percentile(l.raw, 50)
		x := ratio(em, rm)
		add(fmt.Sprintf("(a) LAUNCH -> RUNNING, %d sequential: median", n), fmtMS(em), fmtMS(rm),
			fmt.Sprintf("%.2fx", x), fmt.Sprintf("<= %.2fx", targetLaunchRatio), verdict(x <= targetLaunchRatio))
		e90, r90 := percentile(l.exec, 90), percentile(l.raw, 90)
		add("(a) ... p90", fmtMS(e90), fmtMS(r90), fmt.Sprintf("%.2fx", ratio(e90, r90)), "", "")
	}
	if bu := r.burst; bu.exec > 0 && bu.raw > 0 {
		x := ratio(bu.exec, bu.raw)
		add(fmt.Sprintf("(b) %d at once: wall until all RUNNING / started", bu.n), fmtMS(bu.exec), fmtMS(bu.raw),
			fmt.Sprintf("%.2fx", x), fmt.Sprintf("<= %.2fx", targetBurstRatio), verdict(x <= targetBurstRatio))
		add("(b) ... per task median", fmtMS(percentile(bu.execLat, 50)), fmtMS(percentile(bu.rawLat, 50)),
			fmt.Sprintf("%.2fx", ratio(percentile(bu.execLat, 50), percentile(bu.rawLat, 50))), "", "")
	}
	if e := r.exit; len(e.exec) > 0 {
		n := len(e.exec)
		p99 := percentile(e.exec, 99)
		add(fmt.Sprintf("(c) container exit -> terminal update, %d tasks: p50", n), fmtMS(percentile(e.exec, 50)),
			fmtMS(percentile(e.docker, 50))+" (die event)", "", "", "")
		add("(c) ... p99", fmtMS(p99), fmtMS(percentile(e.docker, 99))+" (die event)", "",
			"<= "+fmtMS(targetExitP99), verdict(p99 <= targetExitP99))
		if len(e.own) > 0 {
			add("(c) ... executor's share: die event -> update, p50 / p99",
				fmtMS(percentile(e.own, 50))+" / "+fmtMS(percentile(e.own, 99)), "", "", "", "")
		}
		if len(e.inspect) > 0 {
			add("(c) ... raw client: die event + inspect, p50 / p99", "",
				fmtMS(percentile(e.inspect, 50))+" / "+fmtMS(percentile(e.inspect, 99)), "", "", "")
		}
	}
	if s := r.rss; s.idle.rssKB > 0 {
		add("(d) executor RSS idle", fmt.Sprintf("%.1f MiB", float64(s.idle.rssKB)/1024), "", "", "", "")
		if s.nLow > 0 {
			add(fmt.Sprintf("(d) executor RSS, %d running", s.nLow), fmt.Sprintf("%.1f MiB", float64(s.low.rssKB)/1024), "", "", "", "")
		}
		if s.nHigh > 0 {
			per := float64(s.high.rssKB-s.idle.rssKB) / float64(s.nHigh)
			add(fmt.Sprintf("(d) executor RSS, %d running", s.nHigh), fmt.Sprintf("%.1f MiB", float64(s.high.rssKB)/1024), "", "", "", "")
			add(fmt.Sprintf("(d) RSS per running task (RSS@%d - idle)/%d", s.nHigh, s.nHigh), fmt.Sprintf("%.0f KB", per), "", "",
				fmt.Sprintf("<= %d KB", targetRSSPerTask), verdict(per <= targetRSSPerTask))
			if s.nLow > 0 && s.nHigh > s.nLow {
				marg := float64(s.high.rssKB-s.low.rssKB) / float64(s.nHigh-s.nLow)
				add(fmt.Sprintf("(d) ... marginal, %d -> %d running", s.nLow, s.nHigh), fmt.Sprintf("%.0f KB", marg), "", "", "", "")
			}
		}
		g := fmt.Sprintf("%d / %d / %d", s.idle.goroutines, s.low.goroutines, s.high.goroutines)
		fd := fmt.Sprintf("%d / %d / %d", s.idle.fds, s.low.fds, s.high.fds)
		mib := func(kb int64) string { return fmt.Sprintf("%.1f", float64(kb)/1024) }
		add(fmt.Sprintf("(d) Go heap in use idle / %d / %d (MiB)", s.nLow, s.nHigh),
			mib(s.idle.heapKB)+" / "+mib(s.low.heapKB)+" / "+mib(s.high.heapKB), "", "", "", "")
		add(fmt.Sprintf("(d) goroutine stacks idle / %d / %d (MiB)", s.nLow, s.nHigh),
			mib(s.idle.stackKB)+" / "+mib(s.low.stackKB)+" / "+mib(s.high.stackKB), "", "", "", "")
		add(fmt.Sprintf("(d) goroutines idle / %d / %d", s.nLow, s.nHigh), g, "", "", "", "")
		add(fmt.Sprintf("(d) open fds idle / %d / %d", s.nLow, s.nHigh), fd, "", "", "", "")
	}
	if st := r.state; len(st.lat) > 0 {
		p99 := percentile(st.lat, 99)
		add(fmt.Sprintf("(e) GET /state, %d tasks (%d KiB), %d requests: median", st.tasks, st.bytes>>10, len(st.lat)),
			fmtMS(percentile(st.lat, 50)), "", "", "", "")
		add("(e) ... p99", fmtMS(p99), "", "", "<= "+fmtMS(targetStateP99), verdict(p99 <= targetStateP99))
	}
	if len(rows) == 0 {
		return
	}

	head := row{"measurement", "executor", "raw Docker API", "ratio", "target", "result"}
	widths := make([]int, 6)
	cells := func(r row) []string { return []string{r.what, r.exec, r.raw, r.ratio, r.target, r.met} }
	for _, r := range append([]row{head}, rows...) {
		for i, c := range cells(r) {
			widths[i] = max(widths[i], len(c))
		}
	}
	line := func(cs []string) {
		var b strings.Builder
		b.WriteString("|")
		for i, c := range cs {
			fmt.Fprintf(&b, " %-*s |", widths[i], c)
		}
		fmt.Fprintln(w, b.String())
	}
	fmt.Fprintf(w, "\n%s\n\n", r.env)
	line(cells(head))
	sep := make([]string, 6)
	for i := range sep {
		sep[i] = strings.Repeat("-", widths[i])
	}
	line(sep)
	for _, r := range rows {
		line(cells(r))
	}
	fmt.Fprintf(w, "\nload average at the end: %s (%d CPUs)\n\n", loadavg(), runtime.NumCPU())
}
