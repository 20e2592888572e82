"""Who may use the app: secrets and the login gate in front of Streamlit."""
