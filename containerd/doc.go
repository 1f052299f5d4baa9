// Package containerd is the executor's container-runtime adapter. Despite its
// historical name it drives the Docker Engine, through the Engine HTTP API only
// (github.com/docker/docker/client, never the docker CLI); no other package of
// the executor imports the Docker client.
//
// It creates, starts, signals, inspects and removes containers, pulls images at
// most once at a time per reference (shared by every waiting task, with the
// registry credentials of the operator's Docker config file, progress for
// /state and a stall timeout), and reports container exits from a single
// Docker events stream filtered to this executor's own containers. The stream is
// lossy by Docker's own account, so after any error it is reopened with `since`
// and followed by a reconciling list, and every exit is confirmed with one
// inspect (exit code, OOM flag). There is no polling loop per container.
//
// Every container it creates carries ownership labels (see the Label*
// constants) so that a later instance, the cleanup sweep or an operator can
// tell which executor owns it. The adapter never touches a container without
// those labels.
package containerd
