package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"
	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/executor"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/sirupsen/logrus"
	"golang.org/x/sys/unix"

	"github.com/mdx-executor/mdx/agent"
	"github.com/mdx-executor/mdx/cleanup"
	"github.com/mdx-executor/mdx/containerd"
	"github.com/mdx-executor/mdx/health"
	"github.com/mdx-executor/mdx/isolation"
	"github.com/mdx-executor/mdx/reaper"
	"github.com/mdx-executor/mdx/status"
	"github.com/mdx-executor/mdx/task"
)

// Exit codes.
const (
	exitOK      = 0
	exitFailure = 1
)

func newLogger(cfg Config) (*logrus.Entry, error) {
	l := logrus.New()
	l.SetOutput(os.Stderr)
	if cfg.LogFormat == "json" {
		l.SetFormatter(&logrus.JSONFormatter{})
	} else {
		l.SetFormatter(&logrus.TextFormatter{FullTimestamp: true, DisableColors: true})
	}
	lvl, err := logrus.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", cfg.LogLevel, err)
	}
	l.SetLevel(lvl)
	return logrus.NewEntry(l).WithFields(logrus.Fields{
		"executor_id":  cfg.Agent.ExecutorID,
		"framework_id": cfg.Agent.FrameworkID,
	}), nil
}

// run is the executor: it returns the process exit code.
func run(cfg Config) int {
	log, err := newLogger(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "executor:", err)
		return 2
	}
	for _, w := range cfg.StartWarnings {
		log.Warn(w)
	}
	// The token authenticates this executor to its agent only; main took
	// it out of the environment (takeAuthToken), this is belt and braces.
	_ = os.Unsetenv(agent.TokenEnv)

	// SIGPIPE on a closed socket must not kill the executor; the write
	// error is handled where it happens.
	signal.Ignore(syscall.SIGPIPE)
	raiseNoFile(log)
	// Become the child subreaper (or PID 1's init) before anything forks,
	// so that every orphan re-parented to the executor is reaped.
	rp, err := reaper.New(log.WithField("component", "reaper"))
	if err != nil {
		log.WithError(err).Error("cannot become a child subreaper")
		return exitFailure
	}

	root, cancelRoot := context.WithCancel(context.Background())
	defer cancelRoot()

	reg := prometheus.NewRegistry()
	m := newDockerMetrics(reg)
	dc, err := containerd.New(root, containerd.Config{Host: cfg.DockerHost, CallTimeout: cfg.DockerTimeout, PullStallTimeout: cfg.PullStallTimeout, Observe: m.observeDocker, Log: cfg.DockerLog}, log.WithField("component", "docker"))
	if err != nil {
		log.WithError(err).Error("cannot reach the Docker Engine; exiting so that the agent reports the executor's tasks")
		return exitFailure
	}
	defer dc.Close()
	dinfo, err := dc.DaemonInfo(root)
	if err != nil {
		log.WithError(err).Warn("docker info failed")
	}
	log.WithFields(logrus.Fields{"api_version": dc.APIVersion(), "storage_driver": dinfo.Driver, "server_version": dinfo.ServerVersion}).Info("connected to the Docker Engine")
	// The policy is read once Docker says where it keeps what containers
	// write (a task can plant root-owned files there), and before any
	// task: nothing has used the defaults yet.
	pol := loadPolicy(cfg, dinfo.DockerRootDir, log)
	dc.SetDockerConfigPath(pol.DockerConfig)
	iso, stats := startIsolation(cfg, dinfo, log.WithField("component", "isolation"))
	defer func() {
		// After the containers are gone (the deferred call runs at
		// return, after removeLeftovers): empty parent cgroups go too.
		if err := iso.Cleanup(); err != nil {
			log.WithError(err).Warn("could not remove the tasks' parent cgroup")
		}
	}()
	storage := cleanup.CheckStorage(dinfo)
	for _, w := range storage.Warnings {
		log.WithField("storage_driver", dinfo.Driver).Warn(w)
	}

	gating := startGating(root, cfg, pol, rp, dc, log.WithField("component", "prestart"))

	sup := health.NewSupervisor(health.Options{MaxConcurrent: cfg.HealthMaxProbes, EveryFailure: cfg.HealthEveryFailure}, dc, log.WithField("component", "health"))
	instance := uuid.NewString()
	// Containers of a dead earlier instance with the same ids belong to
	// tasks the agent already reported lost when that instance died; they
	// must not live on. A live instance's (two agents on one daemon) are
	// running tasks and stay. Done before subscribing, so no new task can
	// be confused with them.
	sctx, cancelSweep := context.WithTimeout(root, 2*time.Minute)
	previous, err := cleanup.RemovePreviousInstances(sctx, dc, cleanup.Liveness{Instance: instance},
		cfg.Agent.FrameworkID, cfg.Agent.ExecutorID, log.WithField("component", "cleanup"))
	if err != nil {
		log.WithError(err).Error("could not remove every container of an earlier executor instance")
	} else if previous.Removed > 0 {
		log.WithField("containers", previous.Removed).Warn("removed containers left by an earlier instance of this executor")
	}
	cancelSweep()
	remover := cleanup.NewRemover(cleanup.RemoverConfig{
		FrameworkID:   cfg.Agent.FrameworkID,
		ExecutorID:    cfg.Agent.ExecutorID,
		DockerRootDir: dinfo.DockerRootDir,
	}, dc, log.WithField("component", "cleanup"))
	var images *cleanup.ImageCollector
	if cfg.ImageGC {
		images = cleanup.NewImageCollector(cleanup.ImageConfig{UnusedFor: cfg.ImageGCUnused, Dangling: cfg.ImageGCDangling}, dc, log.WithField("component", "image_gc"))
	}
	link := agent.New(cfg.Agent, log.WithField("component", "agent"))
	var cgStats task.CgroupStats
	if stats != nil {
		cgStats = stats // a nil *Reader must stay a nil interface
	}
	mgr := task.New(task.Config{
		Stats:  cgStats,
		Gating: gating,
		Policy: task.Policy{
			Operator:         pol,
			DefaultKillGrace: cfg.DefaultKillGrace,
			FrameworkID:      cfg.Agent.FrameworkID,
			ExecutorID:       cfg.Agent.ExecutorID,
			AgentID:          cfg.Agent.AgentID,
			CgroupParent:     iso.Parent,
			CPUQuota:         cfg.CPUQuota,
			PidsLimit:        cfg.PidsLimit,
		},
		SandboxRoot:       cfg.Agent.Sandbox,
		HostSandboxRoot:   cfg.Agent.Directory,
		Instance:          instance,
		BootID:            bootID(),
		RemoveDelay:       cfg.RemoveDelay,
		ShutdownGrace:     cfg.Agent.ShutdownGracePeriod,
		IdleTimeout:       cfg.IdleTimeout,
		LogMaxBytes:       cfg.TaskLogMaxBytes,
		LogKeep:           cfg.TaskLogMaxFiles,
		ReconcileInterval: cfg.ReconcileInterval,
		FinishedKept:      cfg.FinishedKept,
		FinishedMaxAge:    cfg.FinishedMaxAge,
		FactsTimeout:      cfg.FactsTimeout,
		AckWait:           cfg.AckWait,
		Health:            sup,
		Remover:           remover,
		ImageUsed: func(ref string) {
			if images != nil {
				images.Used(ref)
			}
		},
	}, dc, link, log.WithField("component", "tasks"))
	sweeper := cleanup.NewSweeper(cleanup.SweeperConfig{
		FrameworkID:      cfg.Agent.FrameworkID,
		ExecutorID:       cfg.Agent.ExecutorID,
		Instance:         instance,
		Interval:         cfg.CleanupInterval,
		CreatedGrace:     cfg.CreatedGrace,
		RemoveDelay:      cfg.RemoveDelay,
		SandboxRoot:      cfg.Agent.Sandbox,
		SandboxRetention: cfg.SandboxRetention,
		Tasks:            mgr,
		RemoveOrphans:    cfg.RemoveOrphans,
	}, dc, remover, log.WithField("component", "cleanup"))

	m.register(reg, mgr, link, dc)
	reg.MustRegister(sup.Collectors()...)
	zombies := reaper.NewZombieWatch(reaper.WatchConfig{Interval: cfg.ZombieInterval, Threshold: cfg.ZombieThreshold},
		log.WithField("component", "zombies"), func() map[string]int {
			pids := map[string]int{}
			for _, v := range mgr.Snapshot() {
				if v.Pid > 0 {
					pids[v.TaskID] = v.Pid
				}
			}
			return pids
		})
	var collector *isolation.Collector
	if stats != nil {
		defer stats.Close()
		collector = isolation.NewCollector(stats, func() []isolation.TaskRef { return runningTasks(mgr) }, log.WithField("component", "isolation"))
		reg.MustRegister(collector)
	}
	reg.MustRegister(rp.Collectors()...)
	reg.MustRegister(zombies.Collectors()...)
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "docker_connections", Help: "Connections to the Docker daemon open now.",
	}, func() float64 { return float64(dc.OpenConnections()) }))
	reg.MustRegister(remover.Collectors()...)
	reg.MustRegister(sweeper.Collectors()...)
	if images != nil {
		reg.MustRegister(images.Collectors()...)
	}
	link.OnAck = m.observeAck
	link.OnReject = func(taskID string, _ mesos.TaskState, uuid []byte, _ error) { mgr.UpdateRejected(taskID, uuid) }

	src := &stateSource{cfg: cfg, policy: pol, instance: instance, started: time.Now(), mgr: mgr, link: link, docker: dinfo,
		dockerAPI: dc.APIVersion(), iso: iso, stats: collector, storage: storage, remover: remover, sweeper: sweeper, images: images,
		reaper: rp, zombies: zombies, pulls: dc.Pulls, previous: previous}
	var bg sync.WaitGroup
	bgCtx, stopBG := context.WithCancel(root)
	defer func() { stopBG(); bg.Wait() }()

	if ln, err := status.Listen(cfg.StatusSocket); err != nil {
		// The executor's job is its tasks; a missing debug socket is
		// worth a loud line, not an exit.
		log.WithError(err).Error("status socket unavailable")
	} else {
		srv := status.New(src, reg, log.WithField("component", "status"))
		bg.Add(1)
		go func() {
			defer bg.Done()
			if err := srv.Serve(bgCtx, ln); err != nil {
				log.WithError(err).Error("status socket stopped")
			}
		}()
		log.WithField("socket", cfg.StatusSocket).Info("status socket listening")
	}

	runners := []interface{ Run(context.Context) error }{rp, sup, remover, sweeper, zombies}
	if images != nil {
		runners = append(runners, images)
	}
	bg.Add(1)
	go func() {
		defer bg.Done()
		cleanup.TouchAlive(bgCtx, cfg.Agent.Sandbox, log)
	}()
	for _, r := range runners {
		bg.Add(1)
		go func() {
			defer bg.Done()
			_ = r.Run(bgCtx)
		}()
	}

	// Container exits: one events stream for this executor's containers.
	exits := make(chan containerd.Exit, 256)
	bg.Add(2)
	go func() {
		defer bg.Done()
		labels := map[string]string{
			containerd.LabelFramework: cfg.Agent.FrameworkID,
			containerd.LabelExecutor:  cfg.Agent.ExecutorID,
			containerd.LabelInstance:  instance,
		}
		if err := dc.WatchExits(bgCtx, labels, exits); err != nil && bgCtx.Err() == nil {
			log.WithError(err).Error("container exit watch stopped")
		}
	}()
	go func() {
		defer bg.Done()
		// A reopened events stream may have missed a container removed
		// while it was down: reconcile the running tasks after each.
		seen := dc.StreamReconnects()
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		for {
			select {
			case <-bgCtx.Done():
				return
			case e := <-exits:
				mgr.HandleExit(e)
			case <-tick.C:
				if n := dc.StreamReconnects(); n != seen {
					seen = n
					mgr.Reconcile()
				}
			}
		}
	}()

	// The agent link and the forwarding of its events.
	linkErr := make(chan error, 1)
	bg.Add(2)
	go func() {
		defer bg.Done()
		linkErr <- link.Run(bgCtx)
	}()
	go func() {
		defer bg.Done()
		forwardEvents(link.Events(), mgr)
	}()

	// Signals mean an orderly shutdown, as SHUTDOWN does.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)

	mgrDone := make(chan error, 1)
	go func() { mgrDone <- mgr.Run(root) }()

	code := exitOK
	linkLost := false
	var mgrErr error
loop:
	for {
		select {
		case s := <-sigs:
			log.WithField("signal", s.String()).Info("signal received; shutting down")
			mgr.Shutdown("signal " + s.String())
		case err := <-linkErr:
			if err == nil {
				continue
			}
			code, linkLost = exitFailure, true
			log.WithError(err).Error("agent link lost for good; killing every task and exiting")
			mgr.Shutdown(err.Error())
		case mgrErr = <-mgrDone:
			break loop
		}
	}
	if mgrErr != nil && !errors.Is(mgrErr, task.ErrIdle) {
		log.WithError(mgrErr).Error("task manager stopped")
		code = exitFailure
	}

	// Every task is terminal: give the agent the rest of the grace period
	// to ACK the terminal updates (exiting earlier makes the agent mark the
	// tasks FAILED "executor terminated"), then remove the containers.
	if linkLost {
		// No agent to ACK anything: it reports the tasks itself.
		if n := link.Unacknowledged(); n > 0 {
			log.WithField("unacknowledged_updates", n).Warn("exiting with unacknowledged status updates; the agent is gone")
		}
	} else {
		drainFor := max(cfg.Agent.ShutdownGracePeriod-time.Second, 2*time.Second)
		dctx, cancel := context.WithTimeout(root, drainFor)
		if err := link.WaitDrained(dctx); err != nil {
			log.WithError(err).Warn("exiting with unacknowledged status updates")
		}
		cancel()
	}
	// Remove every container now, not after the remove delay: the
	// executor is going away and nothing else would remove them.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(root), 30*time.Second)
	if err := remover.Drain(rctx); err != nil {
		log.WithError(err).Error("some task containers could not be removed")
	}
	cancel()
	// Backstop: anything still labelled with this instance (a create the
	// executor never learned the id of, a removal the drain could not
	// finish on a saturated daemon) must not outlive it either. The label
	// filter proves ownership, so no inspect per container; its own
	// deadline, since the drain's may be spent.
	bctx, cancel := context.WithTimeout(context.WithoutCancel(root), 2*time.Minute)
	removeLeftovers(bctx, dc, instance, log)
	cancel()
	log.WithField("exit_code", code).Info("executor exiting")
	return code
}

// removeLeftovers force-removes, eight at a time, every container labelled
// with this executor instance.
func removeLeftovers(ctx context.Context, dc *containerd.Client, instance string, log *logrus.Entry) {
	left, err := dc.List(ctx, map[string]string{containerd.LabelInstance: instance}, true)
	if err != nil {
		log.WithError(err).Error("cannot list this instance's containers; some may be left behind")
		return
	}
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for _, c := range left {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := dc.Remove(ctx, c.ID); err != nil {
				log.WithError(err).WithFields(logrus.Fields{"container_id": c.ID, "task_id": c.Labels[containerd.LabelTask]}).Error("could not remove a leftover container")
			}
		}()
	}
	wg.Wait()
}

func forwardEvents(events <-chan *executor.Event, mgr *task.Manager) {
	for ev := range events {
		mgr.HandleEvent(ev)
	}
}

// raiseNoFile lifts the soft open-files limit to the hard limit: every task
// costs a few descriptors (log files, Docker streams) and the default soft
// limit of 1024 is reached with a few hundred tasks.
func raiseNoFile(log *logrus.Entry) {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
		log.WithError(err).Warn("getrlimit NOFILE")
		return
	}
	if lim.Cur < lim.Max {
		old := lim.Cur
		lim.Cur = lim.Max
		if err := unix.Setrlimit(unix.RLIMIT_NOFILE, &lim); err != nil {
			log.WithError(err).Warn("cannot raise the open files limit")
			return
		}
		log.WithFields(logrus.Fields{"from": old, "to": lim.Max}).Debug("raised the open files limit")
	}
}

func bootID() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}
