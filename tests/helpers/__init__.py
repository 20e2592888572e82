"""What tests share: processes, files, app sessions, runs, the browser and PostgreSQL harnesses; no tests here."""
