package io.egresstunnel.routing;

/** Where a connection goes: dialled by the server itself, or through a node's agent. */
public sealed interface Route permits Route.Direct, Route.ViaAgent {

  /** The one {@link Direct} route. */
  Route DIRECT = Direct.INSTANCE;

  /** The server dials the target itself. */
  enum Direct implements Route {
    INSTANCE;

    @Override
    public String toString() {
      return "Direct";
    }
  }

  /**
   * The connection goes through the agent of {@code node}, which dials the target on its node.
   *
   * @param node the node name
   */
  record ViaAgent(String node) implements Route {
    public ViaAgent {
      if (node == null || node.isEmpty()) {
        throw new IllegalArgumentException("node name is empty");
      }
    }
  }
}
