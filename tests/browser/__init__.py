"""Real-browser tests (headless Chromium via Playwright); see conftest.py."""
