"""Reports: gather a run's data (build), render Markdown and self-contained HTML, draw the
figures (plots, the only matplotlib user), write the files (files). Reads run directories;
never the search loop.
"""
