"""A markdown table, as the benchmark scripts print theirs."""


def print_table(head, lines, footer):
    """Prints `head` and `lines` (tuples of strings) as aligned columns."""
    lines = [tuple(head)] + [tuple(l) for l in lines]
    widths = [max(len(l[c]) for l in lines) for c in range(len(head))]
    for j, l in enumerate(lines):
        print("| " + " | ".join(v.ljust(widths[c]) for c, v in enumerate(l)) + " |")
        if j == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    print(footer)
