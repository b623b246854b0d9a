package io.egresstunnel.proto.net;

import io.netty.channel.IoHandle;
import io.netty.channel.IoHandler;
import io.netty.channel.IoHandlerContext;
import io.netty.channel.IoHandlerFactory;
import io.netty.channel.IoOps;
import io.netty.channel.IoRegistration;
import io.netty.channel.epoll.EpollIoHandler;
import io.netty.channel.epoll.EpollIoOps;

/**
 * Netty 4.2.18's epoll handler with one fault worked around.
 *
 * <p>The fault: when a channel's interest set becomes empty, {@code EpollIoHandler} removes its fd
 * from epoll ({@code EPOLL_CTL_DEL}) but keeps the registration marked as added, so the next
 * non-empty interest set is applied with {@code EPOLL_CTL_MOD}, which fails with {@code ENOENT}. A
 * data channel reaches the empty set routinely: AUTO_READ off (no {@code EPOLLIN}), the peer's FIN
 * seen ({@code EPOLLRDHUP} cleared) and nothing waiting to be written ({@code EPOLLOUT} cleared).
 * The next write that has to wait for the socket buffer then fails, Netty shuts the output down,
 * and the rest of the data is lost: a half-closed client loses the tail of its answer. ({@code
 * EpollInterestFixTest} reproduces it with Netty alone.)
 *
 * <p>The workaround: an empty interest set is submitted as {@code EPOLLET} alone. The fd stays
 * registered, so later changes are plain modifications, and because the entry is edge-triggered
 * with no events asked for, a hung-up socket reports its {@code EPOLLHUP} once rather than waking
 * the loop forever, which is what the removal was meant to prevent. Errors still arrive and close
 * the channel as before. Drop this class once Netty keeps its registration state right.
 */
final class EpollInterestFix implements IoHandlerFactory {
  private final IoHandlerFactory delegate = EpollIoHandler.newFactory();

  @Override
  public IoHandler newHandler(io.netty.util.concurrent.ThreadAwareExecutor executor) {
    return new Handler(delegate.newHandler(executor));
  }

  @Override
  public boolean isChangingThreadSupported() {
    return delegate.isChangingThreadSupported();
  }

  private record Handler(IoHandler delegate) implements IoHandler {
    @Override
    public void initialize() {
      delegate.initialize();
    }

    @Override
    public int run(IoHandlerContext context) {
      return delegate.run(context);
    }

    @Override
    public void prepareToDestroy() {
      delegate.prepareToDestroy();
    }

    @Override
    public void destroy() {
      delegate.destroy();
    }

    @Override
    public IoRegistration register(IoHandle handle) throws Exception {
      return new Registration(delegate.register(handle));
    }

    @Override
    public void wakeup() {
      delegate.wakeup();
    }

    @Override
    public boolean isCompatible(Class<? extends IoHandle> handleType) {
      return delegate.isCompatible(handleType);
    }
  }

  private record Registration(IoRegistration delegate) implements IoRegistration {
    @Override
    public <T> T attachment() {
      return delegate.attachment();
    }

    @Override
    public long submit(IoOps ops) {
      if (ops instanceof EpollIoOps epoll && epoll.value() == 0) {
        return delegate.submit(EpollIoOps.EPOLLET);
      }
      return delegate.submit(ops);
    }

    @Override
    public boolean isValid() {
      return delegate.isValid();
    }

    @Override
    public boolean cancel() {
      return delegate.cancel();
    }
  }
}
