import streamlit as st
st.title("dlx")
