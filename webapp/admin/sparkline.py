"""Throughput sparklines, drawn by the server as the points of an inline SVG polyline."""

from dataclasses import dataclass

WIDTH, HEIGHT = 120, 24
MINUTES = 60


@dataclass(frozen=True)
class Sparkline:
    points: str  # "x,y x,y ...", oldest minute first
    peak: int  # the busiest minute's runs
    total: int

    @property
    def label(self) -> str:
        """What the line shows, for readers who cannot see it."""
        return f"{self.total:,} runs ended in the last hour, at most {self.peak:,} in a minute"


def draw(per_minute: dict[int, int]) -> Sparkline:
    """A line over the last hour from runs per minute, keyed by minutes ago (0 = now)."""
    counts = [per_minute.get(MINUTES - 1 - i, 0) for i in range(MINUTES)]
    peak = max(counts)
    step = WIDTH / (MINUTES - 1)
    points = " ".join(
        f"{i * step:.1f},{HEIGHT - 1 - (count / peak if peak else 0) * (HEIGHT - 2):.1f}"
        for i, count in enumerate(counts)
    )
    return Sparkline(points, peak, sum(counts))
