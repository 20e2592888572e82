"""The pages' logic and the pages under streamlit.testing: launch, runs, live, compare, data, explain."""
