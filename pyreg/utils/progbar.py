"""Text progress bar whose output matches `tf_keras.utils.Progbar` exactly.

Example of a finished epoch (verbose=1):

    391/391 [==============================] - 12s 31ms/step - loss: 0.3412

and the same epoch with verbose=2:

    391/391 - 12s - loss: 0.3412 - 12s/epoch - 31ms/step
"""

import os
import sys
import time

import numpy as np


def _write(message):
    # Plain stdout writes (no logging), flushed so Jupyter shows them at once.
    sys.stdout.write(message)
    sys.stdout.flush()


class Progbar:
    """Displays a progress bar.

    Args:
        target: Total number of steps expected, None if unknown.
        width: Progress bar width on screen.
        verbose: Verbosity mode, 0 (silent), 1 (verbose), 2 (semi-verbose).
        interval: Minimum visual progress update interval (in seconds).
        stateful_metrics: Iterable of names of metrics that should *not* be
            averaged over time; they are displayed as-is. All others are
            averaged by the progbar before display.
        unit_name: Display name for step counts (usually "step" or "sample").
    """

    def __init__(self, target, width=30, verbose=1, interval=0.05,
                 stateful_metrics=None, unit_name="step"):
        self.target = target
        self.width = width
        self.verbose = verbose
        self.interval = interval
        self.unit_name = unit_name
        self.stateful_metrics = set(stateful_metrics or ())

        # Same rule as tf-keras: redraw in place (backspaces + carriage
        # return) on a TTY, in Jupyter, in PyCharm, and on every POSIX system
        # (the `posix` module is always loaded there); otherwise each redraw
        # starts a new line.
        self._dynamic_display = (
            (hasattr(sys.stdout, "isatty") and sys.stdout.isatty())
            or "ipykernel" in sys.modules
            or "posix" in sys.modules
            or "PYCHARM_HOSTED" in os.environ
        )
        self._total_width = 0          # width of the last drawn line
        self._seen_so_far = 0
        self._values = {}              # name -> [weighted sum, total weight]
        self._values_order = []        # names in first-seen order
        self._start = time.time()
        self._last_update = 0
        self._time_at_epoch_start = self._start
        self._time_at_epoch_end = None
        self._time_after_first_step = None

    def update(self, current, values=None, finalize=None):
        """Updates the progress bar.

        Args:
            current: Index of current step.
            values: List of tuples `(name, value_for_last_step)`. Stateful
                metrics are displayed as-is, others as an average over time.
            finalize: Whether this is the last update for the progress bar.
                If `None`, uses `current >= self.target`.
        """
        if finalize is None:
            finalize = self.target is not None and current >= self.target

        for k, v in values or ():
            if k not in self._values_order:
                self._values_order.append(k)
            if k in self.stateful_metrics:
                self._values[k] = [v, 1]
            else:
                # Weight by the steps covered since the previous update; at
                # least 1 so a repeated final update still counts.
                weight = max(current - self._seen_so_far, 1)
                if k in self._values:
                    self._values[k][0] += v * weight
                    self._values[k][1] += weight
                else:
                    self._values[k] = [v * weight, weight]
        self._seen_so_far = current

        now = time.time()
        if current == self.target:
            self._time_at_epoch_end = now
        if self.verbose == 1:
            if now - self._last_update < self.interval and not finalize:
                return  # throttled: too soon since the last redraw
            _write(self._verbose1_line(current, now, finalize))
        elif self.verbose == 2 and finalize:
            _write(self._verbose2_line(current, now))
        self._last_update = now

    def add(self, n, values=None):
        self.update(self._seen_so_far + n, values)

    # -- formatting ---------------------------------------------------------

    def _counter(self, current):
        if self.target is None:
            return "%d/Unknown" % current
        numdigits = int(np.log10(self.target)) + 1
        return ("%" + str(numdigits) + "d/%d") % (current, self.target)

    def _average(self, k):
        total, weight = self._values[k]
        return np.mean(total / max(1, weight))

    def _verbose1_line(self, current, now, finalize):
        prev_total_width = self._total_width
        if self._dynamic_display:
            message = "\b" * prev_total_width + "\r"
        else:
            message = "\n"

        if self.target is not None:
            bar = self._counter(current) + " ["
            prog_width = int(self.width * float(current) / self.target)
            if prog_width > 0:
                bar += "=" * (prog_width - 1)
                bar += ">" if current < self.target else "="
            bar += "." * (self.width - prog_width) + "]"
        else:
            bar = "%7d/Unknown" % current
        self._total_width = len(bar)

        time_per_unit = self._estimate_step_duration(current, now)
        if self.target is None or finalize:
            info = f" - {now - self._start:.0f}s"
            info += self._format_time(time_per_unit, self.unit_name)
        else:
            eta = time_per_unit * (self.target - current)
            if eta > 3600:
                eta_format = "%d:%02d:%02d" % (
                    eta // 3600, (eta % 3600) // 60, eta % 60)
            elif eta > 60:
                eta_format = "%d:%02d" % (eta // 60, eta % 60)
            else:
                eta_format = "%ds" % eta
            info = f" - ETA: {eta_format}"

        for k in self._values_order:
            avg = self._average(k)
            info += f" - {k}: {avg:.4f}" if abs(avg) > 1e-3 else \
                f" - {k}: {avg:.4e}"

        # Pad with spaces to wipe leftovers of a longer previous line.
        self._total_width += len(info)
        if prev_total_width > self._total_width:
            info += " " * (prev_total_width - self._total_width)
        if finalize:
            info += "\n"
        return message + bar + info

    def _verbose2_line(self, current, now):
        info = self._counter(current) + f" - {now - self._start:.0f}s"
        for k in self._values_order:
            avg = self._average(k)
            # tf-keras compares the signed value here (not abs as in verbose 1)
            info += f" - {k}: {avg:.4f}" if avg > 1e-3 else \
                f" - {k}: {avg:.4e}"
        if self._time_at_epoch_end:
            start, end = self._time_at_epoch_start, self._time_at_epoch_end
            time_per_epoch = end - start
            self._time_at_epoch_start = now
            self._time_at_epoch_end = None
            info += " -" + self._format_time(time_per_epoch, "epoch")
            info += " -" + self._format_time(
                time_per_epoch / self.target, self.unit_name)
            info += "\n"
        return info

    @staticmethod
    def _format_time(time_per_unit, unit_name):
        """` 2s/epoch`, ` 31ms/step` or ` 850us/step` by magnitude."""
        if time_per_unit >= 1 or time_per_unit == 0:
            return f" {time_per_unit:.0f}s/{unit_name}"
        if time_per_unit >= 1e-3:
            return f" {time_per_unit * 1000.0:.0f}ms/{unit_name}"
        return f" {time_per_unit * 1000000.0:.0f}us/{unit_name}"

    def _estimate_step_duration(self, current, now):
        """Seconds per step; ignores the (usually slow) first step when later
        steps are available."""
        if not current:
            return 0
        if self._time_after_first_step is not None and current > 1:
            time_per_unit = (now - self._time_after_first_step) / (current - 1)
        else:
            time_per_unit = (now - self._start) / current
        if current == 1:
            self._time_after_first_step = now
        return time_per_unit

    def _update_stateful_metrics(self, stateful_metrics):
        self.stateful_metrics = self.stateful_metrics.union(stateful_metrics)
