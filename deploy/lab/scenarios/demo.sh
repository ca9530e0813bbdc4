# The narrated demo (deploy/demo.sh): the product replacing the seed's scripts, step by step,
# each step saying what it does and what it saw. Every step also reports a result, so the demo
# runs as a test with the other scenarios. The chapters are files of demo/, in the order they
# are told; a demo of another topology (two directors) is a scenario of its own that tells its
# own chapters with the same narration helpers (demo/narrate.sh).
# 2m40s to 4 minutes with other VMs and builds sharing two cores; 9 with more beside them.
# lab-timeout: 900

# The daemons' logs on the console when a step failed.
trap logs_if_failed EXIT

# shellcheck source=e2e/lib.sh
. ./e2e/lib.sh
# shellcheck source=e2e/metrics.sh
. ./e2e/metrics.sh
# shellcheck source=demo/narrate.sh
. ./demo/narrate.sh

# The configs in a directory of the run: the reload chapter edits them, as an operator would.
demo_configs

# shellcheck source=demo/seed.sh
. ./demo/seed.sh
# shellcheck source=demo/operations.sh
. ./demo/operations.sh
# shellcheck source=demo/health.sh
. ./demo/health.sh
# shellcheck source=demo/reload.sh
. ./demo/reload.sh
# shellcheck source=demo/metrics.sh
. ./demo/metrics.sh
# shellcheck source=demo/drain-wait.sh
. ./demo/drain-wait.sh

finale "Done"
say "That was lb: lb-director owns the IPVS table, lb-agent the REDIRECT rule, lbctl the"
say "operator's commands, health checks, reloads and metrics the rest. Try it by hand:"
say "deploy/demo.sh --shell. The runbook for production: docs/operations.md."
