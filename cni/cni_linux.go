package cni

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/containernetworking/cni/libcni"
	types100 "github.com/containernetworking/cni/pkg/types/100"
	"github.com/sirupsen/logrus"

	"github.com/mdx-executor/mdx/reaper"
)

// Defaults of Config's zero values (the policy file's defaults).
const (
	DefaultConfDir = "/etc/cni/net.d"
	DefaultBinDir  = "/usr/lib/cni"
	DefaultTimeout = 30 * time.Second
)

var (
	// ErrBadArg is returned for a CNI argument that cannot be passed
	// safely in CNI_ARGS ("K=V;K=V").
	ErrBadArg = errors.New("bad CNI argument")
	// ErrNoNetwork means no configuration in the conf dir has the name.
	ErrNoNetwork = errors.New("no CNI network of that name")
)

// Config configures a Client.
type Config struct {
	ConfDir string // where the operator's .conflist/.conf files are; "" = DefaultConfDir
	BinDir  string // where the plugins are; "" = DefaultBinDir
	// CacheDir is libcni's cache of attachment results, owned by the
	// executor and kept across its restarts (e.g. /var/lib/mdx/cni).
	// Required.
	CacheDir string
	// Timeout bounds one ADD or DEL of a network (all its plugins);
	// 0 = DefaultTimeout.
	Timeout time.Duration
}

// Client runs CNI ADD and DEL. It is safe for concurrent use.
type Client struct {
	cfg Config
	cni *libcni.CNIConfig
	log *logrus.Entry
}

// New returns a Client that runs plugins through r. A nil log discards.
func New(cfg Config, r *reaper.Reaper, log *logrus.Entry) (*Client, error) {
	if r == nil {
		return nil, errors.New("cni: a reaper is required")
	}
	if cfg.ConfDir == "" {
		cfg.ConfDir = DefaultConfDir
	}
	if cfg.BinDir == "" {
		cfg.BinDir = DefaultBinDir
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	if cfg.CacheDir == "" || !filepath.IsAbs(cfg.CacheDir) {
		return nil, fmt.Errorf("cni: cache directory %q must be an absolute path", cfg.CacheDir)
	}
	if err := os.MkdirAll(cfg.CacheDir, 0o700); err != nil {
		return nil, fmt.Errorf("cni: create cache dir: %w", err)
	}
	if log == nil {
		l := logrus.New()
		l.SetOutput(io.Discard)
		log = logrus.NewEntry(l)
	}
	return &Client{
		cfg: cfg,
		cni: libcni.NewCNIConfigWithCacheDir([]string{cfg.BinDir}, cfg.CacheDir, &reaperExec{r: r}),
		log: log,
	}, nil
}

// PortMapping is one entry of the portMappings capability.
type PortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Attachment is one container's attachment to one network.
type Attachment struct {
	Network     string // the name field of the operator's configuration
	ContainerID string // Docker's container id
	// NetNS is the network namespace path, /proc/<pid>/ns/net. For DEL
	// it must be "" once the container's process is gone: the pid may
	// by then belong to another process, whose interfaces DEL would
	// touch. Plugins then release what they hold on the host only.
	NetNS        string
	IfName       string            // e.g. "eth1"; see IfName
	Args         map[string]string // CNI_ARGS, from network.cni.args.K labels
	PortMappings []PortMapping     // passed to plugins with the portMappings capability
}

// Result is what one ADD gave.
type Result struct {
	Network string         `json:"network"`
	IfName  string         `json:"ifname"`
	IPs     []netip.Prefix `json:"ips"`
	// Raw is the plugin chain's result in the CNI 1.0 format, for hooks
	// (MDX_CNI_RESULT).
	Raw json.RawMessage `json:"result"`
}

// Addrs returns the addresses without prefix lengths, as strings, for
// TaskStatus network_infos.
func (r Result) Addrs() []string {
	out := make([]string, 0, len(r.IPs))
	for _, p := range r.IPs {
		out = append(out, p.Addr().String())
	}
	return out
}

// IfName returns the interface name of a task's i-th CNI attachment (from
// 0): eth0 first when the container's Docker network is none (it has only
// lo), otherwise after Docker's eth0.
func IfName(dockerNetwork string, i int) string {
	if dockerNetwork == "none" {
		return fmt.Sprintf("eth%d", i)
	}
	return fmt.Sprintf("eth%d", i+1)
}

var argKey = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)

// ValidateArgs checks CNI arguments a framework gave: CNI_ARGS is
// "K=V;K=V", so a ";" or "=" in a value would smuggle in other arguments.
func ValidateArgs(args map[string]string) error {
	for k, v := range args {
		if !argKey.MatchString(k) {
			return fmt.Errorf("%w: key %q", ErrBadArg, k)
		}
		if strings.ContainsAny(v, ";=\x00") || len(v) > 1024 {
			return fmt.Errorf("%w: value of %s", ErrBadArg, k)
		}
	}
	return nil
}

func (c *Client) runtimeConf(a Attachment) *libcni.RuntimeConf {
	rt := &libcni.RuntimeConf{ContainerID: a.ContainerID, NetNS: a.NetNS, IfName: a.IfName}
	if len(a.Args) > 0 {
		// IgnoreUnknown: a plugin refuses arguments it does not know
		// otherwise, and every plugin of the chain sees them all.
		rt.Args = [][2]string{{"IgnoreUnknown", "1"}}
		for _, k := range slices.Sorted(mapsKeys(a.Args)) {
			rt.Args = append(rt.Args, [2]string{k, a.Args[k]})
		}
	}
	if len(a.PortMappings) > 0 {
		rt.CapabilityArgs = map[string]any{"portMappings": a.PortMappings}
	}
	return rt
}

func mapsKeys(m map[string]string) func(func(string) bool) {
	return func(yield func(string) bool) {
		for k := range m {
			if !yield(k) {
				return
			}
		}
	}
}

// Load returns the configuration called name from the conf dir.
func (c *Client) Load(name string) (*libcni.NetworkConfigList, error) {
	list, err := libcni.LoadNetworkConf(c.cfg.ConfDir, name)
	if err != nil {
		var nf libcni.NotFoundError
		var none libcni.NoConfigsFoundError
		if errors.As(err, &nf) || errors.As(err, &none) {
			return nil, fmt.Errorf("cni: network %q in %s: %w", name, c.cfg.ConfDir, ErrNoNetwork)
		}
		return nil, fmt.Errorf("cni: load network %q: %w", name, err)
	}
	return list, nil
}

// Add attaches the container to a.Network. On failure libcni has already
// run DEL for the plugins that had succeeded; the caller need not.
func (c *Client) Add(ctx context.Context, a Attachment) (Result, error) {
	if err := ValidateArgs(a.Args); err != nil {
		return Result{}, err
	}
	list, err := c.Load(a.Network)
	if err != nil {
		return Result{}, err
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	start := time.Now()
	res, err := c.cni.AddNetworkList(ctx, list, c.runtimeConf(a))
	if err != nil {
		return Result{}, fmt.Errorf("cni: ADD %s on %s: %w", a.Network, a.IfName, err)
	}
	cur, err := types100.NewResultFromResult(res)
	if err != nil {
		return Result{}, fmt.Errorf("cni: result of %s: %w", a.Network, err)
	}
	out := Result{Network: a.Network, IfName: a.IfName}
	for _, ip := range cur.IPs {
		addr, ok := netip.AddrFromSlice(ip.Address.IP)
		if !ok {
			continue
		}
		ones, _ := ip.Address.Mask.Size()
		out.IPs = append(out.IPs, netip.PrefixFrom(addr.Unmap(), ones))
	}
	if out.Raw, err = json.Marshal(cur); err != nil {
		return Result{}, fmt.Errorf("cni: encode result: %w", err)
	}
	c.log.WithFields(logrus.Fields{
		"container_id": a.ContainerID, "network": a.Network, "ifname": a.IfName,
		"ips": out.Addrs(), "duration": time.Since(start).String(),
	}).Info("CNI network attached")
	return out, nil
}

// Del detaches the container from a.Network. It uses the configuration and
// arguments cached at ADD when there are any (the operator may have changed
// or removed the file since), a.NetNS as given (see Attachment), and
// succeeds for an attachment that does not exist.
func (c *Client) Del(ctx context.Context, a Attachment) error {
	cached, err := c.cached(a.ContainerID)
	if err != nil {
		return err
	}
	for _, ca := range cached {
		if ca.Network == a.Network && ca.IfName == a.IfName {
			ca.NetNS = a.NetNS
			return c.del(ctx, ca)
		}
	}
	// Nothing cached (ADD never finished, or the cache was lost): DEL with
	// the current file, which plugins must accept for unknown containers.
	list, err := c.Load(a.Network)
	if err != nil {
		return err
	}
	return c.delList(ctx, list, a)
}

// Cached returns the attachments of containerID ("" = every container) that
// the cache holds, e.g. for the orphan sweep. Their NetNS is the one used at
// ADD.
func (c *Client) Cached(containerID string) ([]Attachment, error) {
	cached, err := c.cached(containerID)
	if err != nil {
		return nil, err
	}
	out := make([]Attachment, 0, len(cached))
	for _, ca := range cached {
		out = append(out, ca.Attachment)
	}
	return out, nil
}

// DelAll detaches the container from every network the cache has for it:
// the orphan sweep's and a relaunched executor's call, which know only the
// container id. netns is as for Attachment.NetNS ("" once the container's
// process is gone). Every attachment is tried; the errors are joined.
func (c *Client) DelAll(ctx context.Context, containerID, netns string) error {
	if containerID == "" {
		return errors.New("cni: DelAll needs a container id")
	}
	cached, err := c.cached(containerID)
	if err != nil {
		return err
	}
	var errs []error
	for _, ca := range cached {
		ca.NetNS = netns
		errs = append(errs, c.del(ctx, ca))
	}
	return errors.Join(errs...)
}

type cachedAttachment struct {
	Attachment
	config []byte
	args   [][2]string
	caps   map[string]any
}

func (c *Client) cached(containerID string) ([]cachedAttachment, error) {
	atts, err := c.cni.GetCachedAttachments(containerID)
	if err != nil {
		return nil, fmt.Errorf("cni: read cache: %w", err)
	}
	out := make([]cachedAttachment, 0, len(atts))
	for _, a := range atts {
		out = append(out, cachedAttachment{
			Attachment: Attachment{Network: a.Network, ContainerID: a.ContainerID, NetNS: a.NetNS, IfName: a.IfName},
			config:     a.Config, args: a.CniArgs, caps: a.CapabilityArgs,
		})
	}
	return out, nil
}

func (c *Client) del(ctx context.Context, ca cachedAttachment) error {
	list, err := libcni.NetworkConfFromBytes(ca.config)
	if err != nil || len(list.Plugins) == 0 {
		// A configuration whose plugins live in files beside it is
		// cached without them; the current files are the best guess.
		if list, err = c.Load(ca.Network); err != nil {
			return err
		}
	}
	rt := &libcni.RuntimeConf{ContainerID: ca.ContainerID, NetNS: ca.NetNS, IfName: ca.IfName,
		Args: ca.args, CapabilityArgs: ca.caps}
	return c.delRuntime(ctx, list, rt)
}

func (c *Client) delList(ctx context.Context, list *libcni.NetworkConfigList, a Attachment) error {
	return c.delRuntime(ctx, list, c.runtimeConf(a))
}

func (c *Client) delRuntime(ctx context.Context, list *libcni.NetworkConfigList, rt *libcni.RuntimeConf) error {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
	defer cancel()
	if err := c.cni.DelNetworkList(ctx, list, rt); err != nil {
		return fmt.Errorf("cni: DEL %s on %s of %s: %w", list.Name, rt.IfName, rt.ContainerID, err)
	}
	c.log.WithFields(logrus.Fields{"container_id": rt.ContainerID, "network": list.Name, "ifname": rt.IfName}).
		Info("CNI network detached")
	return nil
}

// AttachAll attaches the container to each network in order (interface
// names from IfName). If one fails it detaches the ones already attached and
// returns the error: a task is attached to all its networks or to none.
func (c *Client) AttachAll(ctx context.Context, base Attachment, dockerNetwork string, networks []string) ([]Result, error) {
	results := make([]Result, 0, len(networks))
	for i, name := range networks {
		a := base
		a.Network, a.IfName = name, IfName(dockerNetwork, i)
		res, err := c.Add(ctx, a)
		if err != nil {
			for j := len(results) - 1; j >= 0; j-- {
				d := base
				d.Network, d.IfName = results[j].Network, results[j].IfName
				if derr := c.Del(context.WithoutCancel(ctx), d); derr != nil {
					err = errors.Join(err, derr)
				}
			}
			return nil, err
		}
		results = append(results, res)
	}
	return results, nil
}

// ResultsJSON is the value of MDX_CNI_RESULT for results.
func ResultsJSON(results []Result) ([]byte, error) {
	if len(results) == 0 {
		return nil, nil
	}
	return json.Marshal(results)
}

// Sweep runs DEL (without a namespace) for the cached attachments of every
// container for which alive returns false: at executor start, for what a
// killed predecessor attached, and in the periodic orphan sweep. alive must
// say true for a container that still exists, running or not, that the
// executor will DEL itself. Every container is tried; errors are joined.
func (c *Client) Sweep(ctx context.Context, alive func(containerID string) bool) error {
	all, err := c.Cached("")
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	var errs []error
	for _, a := range all {
		if seen[a.ContainerID] || alive(a.ContainerID) {
			continue
		}
		seen[a.ContainerID] = true
		errs = append(errs, c.DelAll(ctx, a.ContainerID, ""))
	}
	return errors.Join(errs...)
}
