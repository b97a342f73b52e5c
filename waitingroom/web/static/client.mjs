// The waiting room's client as an ES module: see client.js.
import "./client.js";

const WaitingRoom = globalThis.WaitingRoom;
export const { fetch, wait, status } = WaitingRoom;
export default WaitingRoom;
