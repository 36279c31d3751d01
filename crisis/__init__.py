"""crisis: drive public-opinion (舆情) incidents through a staged response with escalating deadlines."""

__version__ = "0.1.0"
