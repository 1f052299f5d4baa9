// Package cleanup removes what the executor owns once it is no longer needed:
// containers of an earlier instance of the same executor (killed with
// SIGKILL and relaunched), and, later, finished containers, sandboxes and
// images. It only ever touches containers that carry the executor's
// ownership labels, always by id, never with a blanket prune.
package cleanup
