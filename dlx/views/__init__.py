"""Streamlit-free page logic: the launch form, the runs table, a live run, progress, compare, export,
and user text shown as text; `charts/` builds the pages' Plotly figures."""
