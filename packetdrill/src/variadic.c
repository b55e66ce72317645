/* packetdrill's callback table has two C variadic entries, fcntl and ioctl. Stable Rust can
 * call variadic functions but not define them: these take the one argument off the list
 * and hand it to the Rust implementations (src/ffi.rs). */
#include <fcntl.h>
#include <stdarg.h>

int synack_pd_fcntl_arg(void *userdata, int fd, int cmd, long arg);
int synack_pd_ioctl_arg(void *userdata, int fd, unsigned long request, void *arg);

int synack_pd_fcntl(void *userdata, int fd, int cmd, ...)
{
	long arg = 0;
	va_list ap;

	/* Only the commands that take an integer argument have one to read. */
	switch (cmd) {
	case F_SETFL:
	case F_SETFD:
	case F_DUPFD:
	case F_DUPFD_CLOEXEC:
		va_start(ap, cmd);
		arg = va_arg(ap, int);
		va_end(ap);
		break;
	default:
		break;
	}
	return synack_pd_fcntl_arg(userdata, fd, cmd, arg);
}

int synack_pd_ioctl(void *userdata, int fd, unsigned long request, ...)
{
	void *arg;
	va_list ap;

	/* Every ioctl packetdrill's scripts make on a socket takes a pointer. */
	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	return synack_pd_ioctl_arg(userdata, fd, request, arg);
}
