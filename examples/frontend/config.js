// Where this deployment's API and OpenReplay live (the tests serve their own config.js).
export default {
  apiUrl: "http://127.0.0.1:8000", // the Flask, FastAPI or Django example
  ingestPoint: "https://openreplay.example.com/ingest", // your OpenReplay's ingest
  projectKey: "your-project-key",
};
