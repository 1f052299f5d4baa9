// Package health implements Mesos health checks for the executor's tasks:
// it turns TaskInfo.health_check and the health.* task labels into one Spec
// with the Mesos defaults (delay 15s, interval 10s, timeout 20s, 3
// consecutive failures, grace 10s), labels winning over native fields.
package health
