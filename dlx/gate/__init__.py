"""Who may use the app (`auth`: the secret `dlx ui` requires beyond this machine) and the login gate that
asks for it in front of Streamlit (`proxy`: a small authenticating reverse proxy)."""
