"""driftrec-ab-report: per-variant results of an A/B test, read from driftrec's event log.

Input: the log as JSON lines, either dumped by `driftrec-history DIR log` (run here, for each
history directory given: each arm's server may keep its own store) or from files.  Records:
impressions (kind "impression", one per item a Recommend returned, labelled with the serving
instance's variant) and events (kind "event"; clicks and purchases are the feedback; Ingest
labels an event without a variant with the instance's).

Per variant: users, impressions, clicks, purchases, CTR = clicks / impressions,
CVR = purchases / clicks, average order amount = purchase amounts / purchases with an amount.
The unit of randomisation is the user (the proxy hashes user ids), so every interval is
computed over users, not impressions: each metric is a ratio of per-user sums, sum(x) /
sum(y), with the delta-method standard error of a ratio estimator,
    se = sqrt(sum_i (x_i - R y_i)^2 / (N (N - 1))) / mean(y),
which stays honest when one user's impressions are correlated (treating impressions as
independent would understate the error).  A difference between two arms gets a normal 95%
interval and a two-sided p-value (independent arms: the variances add).  The sample-ratio
check compares the users per arm with the configured split (chi-square; mismatch when
p < 0.001): a mismatch means the assignment or the logging is broken and the comparison is
not to be trusted.

Only the standard library computes the statistics; matplotlib draws the chart.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys

METRICS = (  # name, label, numerator, denominator
    ("ctr", "CTR (clicks / impressions)", "clicks", "impressions"),
    ("cvr", "CVR (purchases / clicks)", "purchases", "clicks"),
    ("aov", "average order amount", "amount", "orders"),
)
Z95 = 1.959963984540054  # the standard normal's 97.5% quantile
SRM_P = 0.001            # the usual threshold: a real mismatch is rarely subtle


class ReportError(Exception):
    """A problem with the input or the options, said in one line (no traceback)."""


# ---- statistics --------------------------------------------------------------------------

def ratio_estimate(xs, ys):
    """sum(xs) / sum(ys) over users (x_i, y_i) with its delta-method standard error.
    Returns (value, se); value None without a denominator, se None for fewer than 2 users."""
    n = len(xs)
    sx, sy = float(sum(xs)), float(sum(ys))
    if n == 0 or sy == 0:
        return None, None
    r = sx / sy
    if n < 2:
        return r, None
    ss = sum((x - r * y) ** 2 for x, y in zip(xs, ys))
    return r, math.sqrt(ss / (n * (n - 1))) / (sy / n)


def normal_p_two_sided(z):
    return math.erfc(abs(z) / math.sqrt(2.0))


def difference(a, b, alpha=0.05):
    """b - a for two independent (value, se) estimates: diff, its interval, the relative
    change and the two-sided p-value; None where it cannot be computed."""
    (va, sa), (vb, sb) = a, b
    if va is None or vb is None or sa is None or sb is None:
        return None
    diff = vb - va
    se = math.sqrt(sa * sa + sb * sb)
    z_crit = Z95 if alpha == 0.05 else normal_quantile(1 - alpha / 2)
    if se == 0:
        p = 1.0 if diff == 0 else 0.0
    else:
        p = normal_p_two_sided(diff / se)
    return {"diff": diff, "ci": [diff - z_crit * se, diff + z_crit * se], "se": se,
            "relative": diff / va if va else None, "p_value": p, "significant": p < alpha}


def normal_quantile(q):
    """The standard normal's quantile by bisection on erfc (only for alpha != 0.05)."""
    lo, hi = -40.0, 40.0
    for _ in range(200):
        mid = (lo + hi) / 2
        if 0.5 * math.erfc(-mid / math.sqrt(2.0)) < q:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def chi2_sf(x, df):
    """P(X >= x) for X ~ chi-square(df): the regularized upper incomplete gamma Q(df/2, x/2)
    (series below a + 1, continued fraction above, as in Numerical Recipes 6.2)."""
    if x <= 0:
        return 1.0
    a, x = df / 2.0, x / 2.0
    gln = math.lgamma(a)
    if x < a + 1:
        term = total = 1.0 / a
        ap = a
        for _ in range(10000):
            ap += 1
            term *= x / ap
            total += term
            if abs(term) < abs(total) * 1e-15:
                break
        return max(0.0, 1.0 - total * math.exp(-x + a * math.log(x) - gln))
    tiny = 1e-300
    b = x + 1 - a
    c, d = 1 / tiny, 1 / b
    h = d
    for i in range(1, 10000):
        an = -i * (i - a)
        b += 2
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1 / d
        delta = d * c
        h *= delta
        if abs(delta - 1) < 1e-15:
            break
    return min(1.0, math.exp(-x + a * math.log(x) - gln) * h)


def srm_check(observed, expected_share):
    """Chi-square goodness of fit of users per arm against the configured shares."""
    arms = list(expected_share)
    total = sum(observed.get(a, 0) for a in arms)
    share_sum = float(sum(expected_share.values()))
    chi2 = 0.0
    for a in arms:
        e = total * expected_share[a] / share_sum
        if e > 0:
            chi2 += (observed.get(a, 0) - e) ** 2 / e
        elif observed.get(a, 0):
            chi2 = math.inf
    df = len(arms) - 1
    p = 0.0 if math.isinf(chi2) else chi2_sf(chi2, df) if df > 0 and total else 1.0
    return {"expected_share": {a: expected_share[a] / share_sum for a in arms},
            "observed": {a: observed.get(a, 0) for a in arms},
            "chi2": None if math.isinf(chi2) else chi2, "df": df,
            "p_value": p, "threshold": SRM_P, "mismatch": p < SRM_P}


# ---- reading the log ---------------------------------------------------------------------

def parse_records(lines, source):
    """Yields (kind, user, variant, event_type, amount) for each record; ReportError naming
    source and line for anything malformed.  Records the dump tool could not decode
    ({"error": ...}) are yielded as kind None (counted, not fatal: one damaged record should
    not hide an experiment)."""
    for n, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        where = f"{source} line {n}"
        try:
            r = json.loads(line)
        except ValueError as e:
            raise ReportError(f"{where}: not a JSON object ({e.msg})") from None
        if not isinstance(r, dict):
            raise ReportError(f"{where}: not a JSON object")
        if "error" in r and "kind" not in r:
            yield None, None, None, None, None
            continue
        kind = r.get("kind")
        if kind not in ("event", "impression"):
            raise ReportError(f"{where}: \"kind\" must be \"event\" or \"impression\", "
                              f"not {json.dumps(kind)}")
        user = r.get("user_id")
        if not isinstance(user, str) or not user:
            raise ReportError(f"{where}: \"user_id\" missing or not a non-empty string")
        etype = r.get("event_type")
        if not isinstance(etype, str):
            raise ReportError(f"{where}: \"event_type\" missing or not a string")
        variant = r.get("variant")
        if variant is not None and not isinstance(variant, str):
            raise ReportError(f"{where}: \"variant\" is not a string")
        amount = r.get("amount")
        if amount is not None and (isinstance(amount, bool) or
                                   not isinstance(amount, (int, float)) or
                                   not math.isfinite(amount) or amount < 0):
            raise ReportError(f"{where}: \"amount\" is not a non-negative number")
        yield kind, user, variant or None, etype, amount


def dump_history(history_bin, directory):
    """The log of one history directory, as lines, through driftrec-history."""
    if not os.path.isdir(directory):
        raise ReportError(f"{directory}: not a history directory")
    if not os.path.isfile(os.path.join(directory, "data.mdb")):
        raise ReportError(f"{directory}: no history store (data.mdb) in it")
    try:
        r = subprocess.run([history_bin, directory, "log"], capture_output=True, text=True,
                           timeout=600)
    except OSError as e:
        raise ReportError(f"cannot run {history_bin}: {e.strerror}") from None
    if r.returncode != 0:
        raise ReportError(f"{history_bin} {directory} log failed ({r.returncode}): "
                          f"{r.stderr.strip()[-500:]}")
    return r.stdout.splitlines()


class Tally:
    """Per variant, per user: impressions, clicks, purchases, amount, orders (purchases with
    an amount)."""

    def __init__(self):
        self.users = {}  # variant -> user -> [impressions, clicks, purchases, amount, orders]
        self.unattributed = 0
        self.unreadable = 0

    def add(self, kind, user, variant, etype, amount):
        if kind is None:
            self.unreadable += 1
            return
        if variant is None:
            self.unattributed += 1
            return
        u = self.users.setdefault(variant, {}).setdefault(user, [0, 0, 0, 0.0, 0])
        if kind == "impression":
            u[0] += 1
        elif etype == "click":
            u[1] += 1
        elif etype == "purchase":
            u[2] += 1
            if amount is not None:
                u[3] += amount
                u[4] += 1


# ---- the report --------------------------------------------------------------------------

def analyse(tally, split=None, control=None, metric="ctr", alpha=0.05):
    """The report as a dict (the JSON output)."""
    arms = sorted(tally.users)
    if split:
        unknown = [a for a in arms if a not in split]
        if unknown:
            raise ReportError(f"variant(s) {', '.join(unknown)} in the log but not in --split "
                              f"({', '.join(split)})")
        arms = list(split)
    if not arms:
        raise ReportError("no record in the log names a variant: nothing to compare")
    if control is None:
        control = arms[0]
    elif control not in arms:
        raise ReportError(f"--control {control}: not an arm ({', '.join(arms)})")
    out = {"arms": {}, "control": control, "alpha": alpha, "metric": metric}
    estimates = {}
    for a in arms:
        users = tally.users.get(a, {})
        cols = list(zip(*users.values())) if users else [(), (), (), (), ()]
        per = {"impressions": cols[0], "clicks": cols[1], "purchases": cols[2],
               "amount": cols[3], "orders": cols[4]}
        row = {"users": len(users), "impressions": int(sum(per["impressions"])),
               "clicks": int(sum(per["clicks"])), "purchases": int(sum(per["purchases"])),
               "orders_with_amount": int(sum(per["orders"]))}
        for name, _, num, den in METRICS:
            v, se = ratio_estimate(per[num], per[den])
            estimates[(a, name)] = (v, se)
            row[name] = {"value": v, "se": se,
                         "ci": [v - Z95 * se, v + Z95 * se] if se is not None else None}
        out["arms"][a] = row
    out["comparisons"] = []
    for a in arms:
        if a == control:
            continue
        for name, _, _, _ in METRICS:
            d = difference(estimates[(control, name)], estimates[(a, name)], alpha)
            out["comparisons"].append({"arm": a, "vs": control, "metric": name,
                                       **(d or {"diff": None})})
    observed = {a: len(tally.users.get(a, {})) for a in arms}
    share = split or {a: 1.0 for a in arms}
    out["srm"] = srm_check(observed, share)
    seen = {}
    for a, users in tally.users.items():
        for u in users:
            seen[u] = seen.get(u, 0) + 1
    out["users_in_several_arms"] = sum(1 for c in seen.values() if c > 1)
    out["unattributed_records"] = tally.unattributed
    out["unreadable_records"] = tally.unreadable
    out["verdict"] = verdict(out, metric)
    return out


def verdict(report, metric):
    label = dict((m[0], m[1]) for m in METRICS)[metric]
    if report["srm"]["mismatch"]:
        return {"better_arm": None, "metric": metric,
                "text": "sample ratio mismatch: the split or the logging is broken; "
                        "do not trust the comparison"}
    control = report["control"]
    winners = [c for c in report["comparisons"]
               if c["metric"] == metric and c.get("diff") is not None and c["significant"]]
    if not winners:
        return {"better_arm": None, "metric": metric,
                "text": f"no significant difference in {label}"}
    up = [c for c in winners if c["diff"] > 0]
    if up:
        best = max(up, key=lambda c: c["diff"])
        arm = best["arm"]
    else:
        # Every significant arm is worse than the control; the control is better than those.
        best = min(winners, key=lambda c: c["diff"])
        arm = control
    return {"better_arm": arm, "metric": metric,
            "text": f"{arm} is better on {metric.upper()} "
                    f"(difference {best['diff']:+.4g}, p = {best['p_value']:.2g})"}


def fmt(v, digits=4):
    if v is None:
        return "n/a"
    return f"{v:.{digits}g}"


def fmt_ci(ci):
    return "n/a" if ci is None else f"[{fmt(ci[0])}, {fmt(ci[1])}]"


def markdown(report, title):
    lines = [f"# {title}", "",
             "| arm | users | impressions | clicks | purchases | CTR (95% CI) | "
             "CVR (95% CI) | avg order amount (95% CI) |",
             "|---|---:|---:|---:|---:|---|---|---|"]
    for a, r in report["arms"].items():
        cells = [f"{fmt(r[m]['value'])} {fmt_ci(r[m]['ci'])}" for m, _, _, _ in METRICS]
        tag = " (control)" if a == report["control"] else ""
        lines.append(f"| {a}{tag} | {r['users']} | {r['impressions']} | {r['clicks']} | "
                     f"{r['purchases']} | " + " | ".join(cells) + " |")
    lines += ["", "Intervals are computed over users (ratio estimator, delta method), the unit "
              "the split randomises.", "",
              "| arm vs control | metric | difference (95% CI) | relative | p-value |",
              "|---|---|---|---:|---:|"]
    for c in report["comparisons"]:
        if c.get("diff") is None:
            lines.append(f"| {c['arm']} vs {c['vs']} | {c['metric'].upper()} | n/a | n/a | n/a |")
            continue
        rel = "n/a" if c["relative"] is None else f"{100 * c['relative']:+.1f}%"
        lines.append(f"| {c['arm']} vs {c['vs']} | {c['metric'].upper()} | "
                     f"{c['diff']:+.4g} {fmt_ci(c['ci'])} | {rel} | {c['p_value']:.3g} |")
    s = report["srm"]
    shares = ", ".join(f"{a} {100 * v:.1f}%" for a, v in s["expected_share"].items())
    counts = ", ".join(f"{a} {v}" for a, v in s["observed"].items())
    lines += ["", f"Sample ratio check: users {counts} against {shares}: "
              f"chi2 = {fmt(s['chi2'], 3)} (df {s['df']}), p = {s['p_value']:.3g}: "
              + ("**MISMATCH**" if s["mismatch"] else "passes") + f" (threshold p < {SRM_P}).",
              f"Users seen in more than one arm: {report['users_in_several_arms']}; records "
              f"without a variant: {report['unattributed_records']}; unreadable records: "
              f"{report['unreadable_records']}.", "",
              f"**Verdict:** {report['verdict']['text']}.", ""]
    return "\n".join(lines)


def chart(report, path, title):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    arms = list(report["arms"])
    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 3.6))
    for ax, (name, label, _, _) in zip(axes, METRICS):
        values, lo, hi = [], [], []
        for a in arms:
            m = report["arms"][a][name]
            v = m["value"] if m["value"] is not None else 0.0
            values.append(v)
            lo.append(v - m["ci"][0] if m["ci"] else 0.0)
            hi.append(m["ci"][1] - v if m["ci"] else 0.0)
        colors = ["#7f7f7f" if a == report["control"] else "#1f77b4" for a in arms]
        names = [f"{a} (control)" if a == report["control"] else a for a in arms]
        ax.bar(names, values, yerr=[lo, hi], capsize=6, color=colors)
        ax.set_title(label, fontsize=10)
        ax.set_ylim(bottom=0)
    fig.suptitle(f"{title}: 95% intervals over users", fontsize=11)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def parse_split(text):
    split = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        try:
            share = float(value)
        except ValueError:
            share = -1.0
        if not sep or not name or not math.isfinite(share) or share < 0:
            raise ReportError(f"--split {text}: expected ARM=SHARE,ARM=SHARE (e.g. A=50,B=50)")
        if name in split:
            raise ReportError(f"--split {text}: arm {name} given twice")
        split[name] = share
    if len(split) < 2 or sum(split.values()) <= 0:
        raise ReportError(f"--split {text}: at least two arms, with a positive total")
    return split


def default_history_bin():
    env = os.environ.get("DR_HISTORY_BIN")
    if env:
        return env
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    built = os.path.join(here, "build", "server", "driftrec-history")
    return built if os.path.exists(built) else (shutil.which("driftrec-history")
                                                or "driftrec-history")


def main(argv=None):
    ap = argparse.ArgumentParser(
        prog="driftrec-ab-report",
        description="Per-variant CTR, CVR and average order amount of an A/B test from "
                    "driftrec's event log, with 95% intervals over users, the difference "
                    "to the control arm, a sample-ratio check and a chart.")
    ap.add_argument("history", nargs="*", metavar="DIR",
                    help="history directories (one per arm's server, or one shared)")
    ap.add_argument("--log", action="append", default=[], metavar="FILE",
                    help="a log already dumped by `driftrec-history DIR log` ('-': stdin)")
    ap.add_argument("--history-bin", default=None,
                    help="driftrec-history to dump DIRs with (default: $DR_HISTORY_BIN, "
                         "build/server/driftrec-history, then PATH)")
    ap.add_argument("--split", default=None, metavar="A=50,B=50",
                    help="the configured split (default: equal shares of the arms seen)")
    ap.add_argument("--control", default=None, help="the control arm (default: the first)")
    ap.add_argument("--metric", default="ctr", choices=[m[0] for m in METRICS],
                    help="the metric the verdict is about (default ctr)")
    ap.add_argument("--alpha", type=float, default=0.05, help="significance level (0.05)")
    ap.add_argument("--json", metavar="FILE", help="write the report as JSON")
    ap.add_argument("--markdown", metavar="FILE",
                    help="write the markdown report here (default: stdout)")
    ap.add_argument("--chart", metavar="PNG", help="write a bar chart with the intervals")
    ap.add_argument("--title", default="A/B test report")
    args = ap.parse_args(argv)
    try:
        if not args.history and not args.log:
            raise ReportError("give history directories or --log files")
        if not 0 < args.alpha < 1:
            raise ReportError(f"--alpha {args.alpha}: expected a number between 0 and 1")
        split = parse_split(args.split) if args.split else None
        tally = Tally()
        history_bin = args.history_bin or default_history_bin()
        for d in args.history:
            for rec in parse_records(dump_history(history_bin, d), d):
                tally.add(*rec)
        for path in args.log:
            try:
                if path == "-":
                    lines = sys.stdin.read().splitlines()
                else:
                    with open(path, encoding="utf-8") as f:
                        lines = f.read().splitlines()
            except OSError as e:
                raise ReportError(f"{path}: {e.strerror}") from None
            except UnicodeDecodeError:
                raise ReportError(f"{path}: not UTF-8 text") from None
            for rec in parse_records(lines, path):
                tally.add(*rec)
        report = analyse(tally, split, args.control, args.metric, args.alpha)
        text = markdown(report, args.title)
        try:
            if args.json:
                with open(args.json, "w") as f:
                    json.dump(report, f, indent=1)
                    f.write("\n")
            if args.markdown:
                with open(args.markdown, "w") as f:
                    f.write(text)
            else:
                sys.stdout.write(text)
            if args.chart:
                chart(report, args.chart, args.title)
        except OSError as e:
            raise ReportError(f"{e.filename}: {e.strerror}") from None
    except ReportError as e:
        print(f"driftrec-ab-report: {e}", file=sys.stderr)
        return 2
    return 0
