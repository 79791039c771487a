"""The plot of a run: its data, the matplotlib figure and the HTML page."""
