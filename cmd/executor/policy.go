package main

import (
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/policy"
)

// loadPolicy reads the operator's policy file and applies the flags, which
// can only narrow it, and logs what is in force and why.
func loadPolicy(cfg Config, dockerRoot string, log *logrus.Entry) policy.Policy {
	p := policy.Load(cfg.PolicyFile, append(sandboxRoots(cfg), dockerRoot))
	for _, why := range p.Narrow(cfg.Narrowing) {
		log.WithField("setting", why).Warn("a flag or EXECUTOR_* variable asked for more than the operator's policy file allows; ignored")
	}
	fields := logrus.Fields{"policy_file": p.File, "policy_file_status": p.FileStatus}
	for _, s := range p.Settings() {
		fields["policy."+s.Name] = s.Value + " (" + string(s.Source) + ")"
	}
	if strings.HasPrefix(p.FileStatus, "refused") {
		log.WithFields(fields).Error("the operator's policy file is not trustworthy; running with the safe defaults")
	} else {
		log.WithFields(fields).Info("operator policy in force")
	}
	return p
}

// sandboxRoots are the directories a framework can write into, where a policy
// file must never come from: this executor's sandbox and the agent's whole
// work directory (every framework's sandboxes live under its slaves/).
func sandboxRoots(cfg Config) []string {
	roots := []string{cfg.Agent.Sandbox, cfg.Agent.Directory}
	for _, d := range []string{cfg.Agent.Directory, cfg.Agent.Sandbox} {
		if i := strings.Index(d, "/slaves/"); i > 0 {
			roots = append(roots, filepath.Join(d[:i], "slaves"))
		}
	}
	return roots
}
