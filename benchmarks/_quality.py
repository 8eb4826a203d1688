"""The float32-against-int8 quality table the int8 benchmarks print (one place for both)."""


def print_quality_table(results: dict) -> float:
    """Print ``results[precision][task]`` as a Markdown table of float32, int8 and their difference
    in points, and return the largest loss (a negative number of points, 0.0 for none)."""
    print("| task | float32 | int8 | int8 - float32 (points) |")
    print("|---|---|---|---|")
    worst = 0.0
    for task in results["float32"]:
        a, b = results["float32"][task], results["int8"][task]
        worst = min(worst, 100 * (b - a))
        print(f"| {task} | {a:.4f} | {b:.4f} | {100 * (b - a):+.2f} |")
    return worst
