"""The trade engine: plain asyncio code, no Qt. The UI talks to it through its facade and events."""
