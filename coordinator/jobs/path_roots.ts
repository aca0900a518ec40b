// The roots job paths must lie under: shared with the workers, which check their commands' paths too.
export { outsideRoots, parseRootList, type PathRoots } from "../../native/js/path_roots.js";
