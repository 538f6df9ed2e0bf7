"""Writes to jobs, one file per part of a job's life (intake, leases, recovery, notification claims,
deletion, housekeeping) and the messages they publish. Every state change is a conditional update, so a
duplicated message or a second worker can never move a job backwards or finish it twice."""
