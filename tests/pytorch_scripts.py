"""Training loops written the way PyTorch users write them, each as a function of the framework's
modules, so the same code runs on minigan (`import minigan as torch`, ...) and on PyTorch.

The loops follow the everyday scripts: the pytorch/examples DCGAN and MNIST loops, a WGAN with
weight clipping (Arjovsky et al.) and a WGAN-GP (Gulrajani et al.), shrunk to tiny models and data.
Only two things are passed in: `randn`/`rand` (so both frameworks see the same noise) and `sync`
(called right after weights_init, so both start from the same weights). Each returns the
numbers its loop prints, step by step.
"""


def dcgan_loop(torch, nn, F, optim, data, vutils, images, randn, sync, out_dir, epochs=2):
    device = torch.device("cuda:0" if torch.cuda.is_available() else "cpu")
    nz, ngf, ndf, nc = 8, 8, 8, images.shape[1]

    class Generator(nn.Module):
        def __init__(self):
            super(Generator, self).__init__()
            self.main = nn.Sequential(
                nn.ConvTranspose2d(nz, ngf * 2, 4, 1, 0, bias=False),   # 1x1 -> 4x4
                nn.BatchNorm2d(ngf * 2),
                nn.ReLU(True),
                nn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False),  # -> 8x8
                nn.BatchNorm2d(ngf),
                nn.ReLU(True),
                nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False),       # -> 16x16
                nn.Tanh()
            )

        def forward(self, input):
            return self.main(input)

    class Discriminator(nn.Module):
        def __init__(self):
            super(Discriminator, self).__init__()
            self.main = nn.Sequential(
                nn.Conv2d(nc, ndf, 4, 2, 1, bias=False),                # 16x16 -> 8x8
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False),           # -> 4x4
                nn.BatchNorm2d(ndf * 2),
                nn.LeakyReLU(0.2, inplace=True),
                nn.Conv2d(ndf * 2, 1, 4, 1, 0, bias=False),             # -> 1x1
                nn.Sigmoid()
            )

        def forward(self, input):
            return self.main(input)

    def weights_init(m):
        classname = m.__class__.__name__
        if classname.find('Conv') != -1:
            m.weight.data.normal_(0.0, 0.02)
        elif classname.find('BatchNorm') != -1:
            nn.init.normal_(m.weight.data, 1.0, 0.02)
            m.bias.data.fill_(0)

    netG = Generator().to(device)
    netG.apply(weights_init)
    sync('netG', netG)
    netD = Discriminator().to(device)
    netD.apply(weights_init)
    sync('netD', netD)

    criterion = nn.BCELoss()
    fixed_noise = randn(16, nz, 1, 1, device=device)
    real_label = 1.
    fake_label = 0.
    optimizerD = optim.Adam(netD.parameters(), lr=0.0002, betas=(0.5, 0.999))
    optimizerG = optim.Adam(netG.parameters(), lr=0.0002, betas=(0.5, 0.999))
    dataloader = data.DataLoader(data.TensorDataset(torch.tensor(images)), batch_size=8, shuffle=False)

    history = []
    for epoch in range(epochs):
        for i, batch in enumerate(dataloader, 0):
            # (1) Update D: maximize log(D(x)) + log(1 - D(G(z)))
            netD.zero_grad()
            real_cpu = batch[0].to(device)
            b_size = real_cpu.size(0)
            label = torch.full((b_size,), real_label, dtype=real_cpu.dtype, device=device)
            output = netD(real_cpu).view(-1)
            errD_real = criterion(output, label)
            errD_real.backward()
            D_x = output.mean().item()

            noise = randn(b_size, nz, 1, 1, device=device)
            fake = netG(noise)
            label.fill_(fake_label)
            output = netD(fake.detach()).view(-1)
            errD_fake = criterion(output, label)
            errD_fake.backward()
            D_G_z1 = output.mean().item()
            errD = errD_real + errD_fake
            optimizerD.step()

            # (2) Update G: maximize log(D(G(z)))
            netG.zero_grad()
            label.fill_(real_label)          # fake labels are real for the generator cost
            output = netD(fake).view(-1)
            errG = criterion(output, label)
            errG.backward()
            D_G_z2 = output.mean().item()
            optimizerG.step()
            history.append([errD.item(), errG.item(), D_x, D_G_z1, D_G_z2])

        with torch.no_grad():
            fake = netG(fixed_noise).detach().cpu()
        vutils.save_image(fake, '%s/fake_samples_epoch_%03d.png' % (out_dir, epoch), normalize=True)
        torch.save(netG.state_dict(), '%s/netG_epoch_%d.pth' % (out_dir, epoch))
        torch.save(netD.state_dict(), '%s/netD_epoch_%d.pth' % (out_dir, epoch))
    netG.load_state_dict(torch.load('%s/netG_epoch_%d.pth' % (out_dir, epochs - 1)))
    return history


def mnist_loop(torch, nn, F, optim, data, train_set, test_set, sync, out_dir, epochs=2, shuffle=True,
               dropout=(0.25, 0.5)):
    class Net(nn.Module):
        def __init__(self):
            super(Net, self).__init__()
            self.conv1 = nn.Conv2d(1, 4, 3, 1)
            self.conv2 = nn.Conv2d(4, 8, 3, 1)
            self.dropout1 = nn.Dropout(dropout[0])
            self.dropout2 = nn.Dropout(dropout[1])
            self.fc1 = nn.Linear(128, 16)
            self.fc2 = nn.Linear(16, 10)

        def forward(self, x):
            x = self.conv1(x)
            x = F.relu(x)
            x = self.conv2(x)
            x = F.relu(x)
            x = F.max_pool2d(x, 2)
            x = self.dropout1(x)
            x = torch.flatten(x, 1)
            x = self.fc1(x)
            x = F.relu(x)
            x = self.dropout2(x)
            x = self.fc2(x)
            output = F.log_softmax(x, dim=1)
            return output

    def train(model, device, train_loader, optimizer, epoch, losses):
        model.train()
        for batch_idx, (data_, target) in enumerate(train_loader):
            data_, target = data_.to(device), target.to(device)
            optimizer.zero_grad()
            output = model(data_)
            loss = F.nll_loss(output, target)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())

    def test(model, device, test_loader):
        model.eval()
        test_loss = 0
        correct = 0
        with torch.no_grad():
            for data_, target in test_loader:
                data_, target = data_.to(device), target.to(device)
                output = model(data_)
                test_loss += F.nll_loss(output, target, reduction='sum').item()  # sum up batch loss
                pred = output.argmax(dim=1, keepdim=True)  # index of the max log-probability
                correct += pred.eq(target.view_as(pred)).sum().item()
        test_loss /= len(test_loader.dataset)
        return test_loss, correct

    use_cuda = torch.cuda.is_available()
    device = torch.device("cuda" if use_cuda else "cpu")
    train_kwargs = {'batch_size': 8, 'shuffle': shuffle}
    test_kwargs = {'batch_size': 16}
    train_loader = data.DataLoader(data.TensorDataset(*[torch.tensor(a) for a in train_set]), **train_kwargs)
    test_loader = data.DataLoader(data.TensorDataset(*[torch.tensor(a) for a in test_set]), **test_kwargs)

    model = Net().to(device)
    sync('model', model)
    optimizer = optim.Adadelta(model.parameters(), lr=1.0)
    scheduler = optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.7)
    losses, tests, lrs = [], [], []
    for epoch in range(1, epochs + 1):
        train(model, device, train_loader, optimizer, epoch, losses)
        tests.append(test(model, device, test_loader))
        scheduler.step()
        lrs.append(scheduler.get_last_lr()[0])
    torch.save(model.state_dict(), '%s/mnist_cnn.pt' % out_dir)
    return losses, tests, lrs


def wgan_loop(torch, nn, F, optim, data, images, randn, sync, generator_steps=3, n_critic=5):
    nz, hidden = 8, 32
    n_pixels = images.shape[1] * images.shape[2] * images.shape[3]
    clamp_lower, clamp_upper = -0.01, 0.01

    netG = nn.Sequential(nn.Linear(nz, hidden), nn.ReLU(True), nn.Linear(hidden, hidden), nn.ReLU(True),
                         nn.Linear(hidden, n_pixels), nn.Tanh())
    netD = nn.Sequential(nn.Linear(n_pixels, hidden), nn.ReLU(True), nn.Linear(hidden, hidden), nn.ReLU(True),
                         nn.Linear(hidden, 1))
    sync('netG', netG)
    sync('netD', netD)
    optimizerD = optim.RMSprop(netD.parameters(), lr=5e-5)
    optimizerG = optim.RMSprop(netG.parameters(), lr=5e-5)
    dataloader = data.DataLoader(data.TensorDataset(torch.tensor(images)), batch_size=4, shuffle=False,
                                 drop_last=True)
    one = torch.tensor([1.0])
    mone = one * -1

    history = []
    gen_iterations = 0
    data_iter = iter(dataloader)
    while gen_iterations < generator_steps:
        # (1) Update the critic n_critic times, its weights clipped to a box
        for p in netD.parameters():
            p.requires_grad = True
        for _ in range(n_critic):
            for p in netD.parameters():
                p.data.clamp_(clamp_lower, clamp_upper)
            try:
                real = next(data_iter)[0]
            except StopIteration:
                data_iter = iter(dataloader)
                real = next(data_iter)[0]
            netD.zero_grad()
            errD_real = netD(real.view(real.size(0), -1)).mean(0).view(1)
            errD_real.backward(one)
            noise = randn(real.size(0), nz)
            with torch.no_grad():
                fake = netG(noise)
            errD_fake = netD(fake).mean(0).view(1)
            errD_fake.backward(mone)
            errD = errD_real - errD_fake
            optimizerD.step()
        # (2) Update the generator
        for p in netD.parameters():
            p.requires_grad = False      # avoid computing the critic's gradients
        netG.zero_grad()
        noise = randn(4, nz)
        errG = netD(netG(noise)).mean(0).view(1)
        errG.backward(one)
        optimizerG.step()
        gen_iterations += 1
        history.append([errD.item(), errG.item(), errD_real.item(), errD_fake.item()])
    return history


def wgan_gp_loop(torch, nn, F, optim, data, autograd, images, randn, rand, sync, epochs=2, n_critic=2):
    img_shape = tuple(images.shape[1:])
    n_pixels = img_shape[0] * img_shape[1] * img_shape[2]
    latent_dim, lambda_gp = 8, 10

    class Generator(nn.Module):
        def __init__(self):
            super(Generator, self).__init__()

            def block(in_feat, out_feat, normalize=True):
                layers = [nn.Linear(in_feat, out_feat)]
                if normalize:
                    layers.append(nn.BatchNorm1d(out_feat, 0.8))
                layers.append(nn.LeakyReLU(0.2, inplace=True))
                return layers

            self.model = nn.Sequential(*block(latent_dim, 16, normalize=False), *block(16, 32),
                                       nn.Linear(32, n_pixels), nn.Tanh())

        def forward(self, z):
            img = self.model(z)
            return img.view(img.shape[0], *img_shape)

    class Discriminator(nn.Module):
        def __init__(self):
            super(Discriminator, self).__init__()
            self.model = nn.Sequential(nn.Linear(n_pixels, 32), nn.LeakyReLU(0.2, inplace=True),
                                       nn.Linear(32, 16), nn.LeakyReLU(0.2, inplace=True), nn.Linear(16, 1))

        def forward(self, img):
            img_flat = img.view(img.shape[0], -1)
            return self.model(img_flat)

    generator, discriminator = Generator(), Discriminator()
    sync('generator', generator)
    sync('discriminator', discriminator)
    optimizer_G = optim.Adam(generator.parameters(), lr=1e-4, betas=(0.5, 0.9))
    optimizer_D = optim.Adam(discriminator.parameters(), lr=1e-4, betas=(0.5, 0.9))

    def compute_gradient_penalty(D, real_samples, fake_samples):
        """The penalty (||grad D(x_hat)|| - 1)^2 at random points between real and fake samples."""
        alpha = rand(real_samples.size(0), 1, 1, 1)
        interpolates = (alpha * real_samples + ((1 - alpha) * fake_samples)).requires_grad_(True)
        d_interpolates = D(interpolates)
        fake = torch.ones(real_samples.shape[0], 1, requires_grad=False)
        gradients = autograd.grad(outputs=d_interpolates, inputs=interpolates, grad_outputs=fake,
                                  create_graph=True, retain_graph=True, only_inputs=True)[0]
        gradients = gradients.view(gradients.size(0), -1)
        return ((gradients.norm(2, dim=1) - 1) ** 2).mean()

    dataloader = data.DataLoader(data.TensorDataset(torch.tensor(images)), batch_size=4, shuffle=False)
    history = []
    for epoch in range(epochs):
        for i, (imgs,) in enumerate(dataloader):
            real_imgs = imgs.float()
            optimizer_D.zero_grad()
            z = randn(imgs.shape[0], latent_dim)
            fake_imgs = generator(z)
            real_validity = discriminator(real_imgs)
            fake_validity = discriminator(fake_imgs)
            gradient_penalty = compute_gradient_penalty(discriminator, real_imgs.data, fake_imgs.data)
            d_loss = -torch.mean(real_validity) + torch.mean(fake_validity) + lambda_gp * gradient_penalty
            d_loss.backward()
            optimizer_D.step()
            optimizer_G.zero_grad()
            if i % n_critic == 0:
                fake_imgs = generator(z)
                fake_validity = discriminator(fake_imgs)
                g_loss = -torch.mean(fake_validity)
                g_loss.backward()
                optimizer_G.step()
                history.append([d_loss.item(), g_loss.item(), gradient_penalty.item()])
    return history
