package task

import (
	"regexp"

	mesos "github.com/mesos/mesos-go/api/v1/lib"

	"github.com/mdx-executor/mdx/cni"
)

// CNI labels (../shared/CONTRACT.md "Networks and pre-start hooks").
const (
	labelCNI     = "network.cni"       // repeatable: one attachment each, in order
	labelCNIArgs = "network.cni.args." // + NAME: a CNI argument for the network's plugins
)

// maxCNINetworks bounds a task's attachments: each is a plugin chain run and
// an interface in the container.
const maxCNINetworks = 8

var cniName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.\-]{0,127}$`)

// parseCNI reads the task's CNI networks from its labels. network.cni repeats,
// so it is read from the label list, not the flattened map. A network must be
// one the operator allows; that it exists in the operator's configuration
// directory is checked at ADD.
func parseCNI(info *mesos.TaskInfo, p Policy) ([]string, map[string]string, error) {
	var nets []string
	var args map[string]string
	seen := map[string]bool{}
	for _, l := range info.GetLabels().GetLabels() {
		switch {
		case l.Key == labelCNI:
			name := l.GetValue()
			if !cniName.MatchString(name) {
				return nil, nil, invalid("label %s=%q: not a CNI network name", labelCNI, name)
			}
			if !p.Operator.NetworkAllowed(name) {
				return nil, nil, invalid("label %s=%s: the network is not in the operator's allowed-networks", labelCNI, name)
			}
			if seen[name] {
				return nil, nil, invalid("label %s=%s given twice", labelCNI, name)
			}
			seen[name] = true
			nets = append(nets, name)
		case len(l.Key) > len(labelCNIArgs) && l.Key[:len(labelCNIArgs)] == labelCNIArgs:
			if args == nil {
				args = map[string]string{}
			}
			args[l.Key[len(labelCNIArgs):]] = l.GetValue()
		}
	}
	if len(nets) > maxCNINetworks {
		return nil, nil, invalid("label %s: %d networks, at most %d", labelCNI, len(nets), maxCNINetworks)
	}
	if len(args) > 0 && len(nets) == 0 {
		return nil, nil, invalid("label %s* without a %s label", labelCNIArgs, labelCNI)
	}
	if err := cni.ValidateArgs(args); err != nil {
		return nil, nil, invalid("label %s: %v", labelCNIArgs, err)
	}
	return nets, args, nil
}
