r"""Command line of lac_jax: train LAC (and evaluate it), or evaluate a checkpoint.

  python -m lac_jax.main --config=configs/synthetic.py --workdir=runs/synthetic
  python -m lac_jax.main --config=configs/pouring.py --workdir=runs/pouring \
      --config.data.data_dir=/data/pouring --config.loss.gamma=0.7
  python -m lac_jax.main --config=configs/pouring.py --workdir=runs/pouring --mode=eval

``--config.<section>.<field>=value`` overrides a field of the config file; unknown fields are
rejected. Rerunning a train command with the same ``--workdir`` resumes from its last
checkpoint. Several processes (multi-host): see ``launch/``, ``--distributed`` and
`lac_jax.distributed`. Preemption (SIGTERM, SIGINT): every process finishes its step, the run
saves a checkpoint and exits 0, and rerunning resumes it (`lac_jax.preemption`). Both stories:
docs/performance.md#several-processes and #preemption.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

from lac_jax import cli
from lac_jax import distributed

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file(
  "config", None, "Python config file with get_config() (configs/*.py).", lock_config=True
)
flags.DEFINE_string("workdir", None, "Run directory: checkpoints, metrics, evaluation results.")
flags.DEFINE_enum(
  "mode",
  "train",
  ["train", "eval"],
  "train: train (resuming if possible) and evaluate; eval: evaluate a checkpoint.",
)
flags.DEFINE_integer("step", None, "--mode=eval: the checkpoint step (default: the newest).")
flags.DEFINE_enum(
  "distributed",
  "auto",
  ["auto", "on", "off"],
  "jax.distributed.initialize(): auto = when a multi-process environment is "
  "detected; on = always (auto-detects TPU pods, SLURM, Open MPI, k8s); off.",
)
flags.DEFINE_integer(
  "heartbeat_timeout_s",
  100,
  "Several processes: one that sends no heartbeat for this long (killed, "
  "host lost) is declared dead and the others stop.",
)
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
  distributed.initialize(FLAGS.distributed, FLAGS.heartbeat_timeout_s)
  from lac_jax import train  # pylint: disable=g-import-not-at-top  (after distributed init)

  if FLAGS.mode == "train":
    train.train_and_evaluate(FLAGS.config, FLAGS.workdir)
  else:
    train.evaluate_checkpoint(FLAGS.config, FLAGS.workdir, FLAGS.step)
  distributed.finish()


def run() -> None:
  """The command line (``python -m lac_jax.main``, ``lac-train``)."""
  cli.run("main", main)


if __name__ == "__main__":
  run()
