"""Custom Streamlit components: frontends written by hand (no npm build), served from files."""
