import { render } from "preact";
import { App } from "./App.js";
import { startRouter } from "./state/router.js";
import { restore } from "./state/session.js";
import "./styles.css";

startRouter();
void restore();
const root = document.getElementById("app");
if (root) {
  root.textContent = "";
  render(<App />, root);
}
